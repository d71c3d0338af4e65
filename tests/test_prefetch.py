"""curate.prefetch: a producer run one step ahead in a thread, seen by the consumer as the same sequence."""

import threading

import pytest

from curate.prefetch import prefetch


def test_prefetch_yields_every_item_in_order():
    assert list(prefetch(iter(range(100)), depth=2)) == list(range(100))


def test_prefetch_runs_the_producer_in_another_thread():
    threads = []

    def items():
        for i in range(3):
            threads.append(threading.get_ident())
            yield i

    assert list(prefetch(items())) == [0, 1, 2]
    assert threading.get_ident() not in threads


def test_prefetch_raises_the_producers_error_after_the_items_before_it():
    def items():
        yield 1
        yield 2
        raise ValueError("bad record")

    got = []
    with pytest.raises(ValueError, match="bad record"):
        for x in prefetch(items()):
            got.append(x)
    assert got == [1, 2]


def test_closing_prefetch_early_stops_and_closes_the_producer():
    closed = threading.Event()

    def items():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    gen = prefetch(items(), depth=1)
    assert [next(gen), next(gen)] == [0, 1]
    gen.close()
    assert closed.is_set()
