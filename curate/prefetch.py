"""Running a producer one step ahead of its consumer: an iterator drained by a background thread into a small
queue, so that reading the next batch (Arrow's JSON parser, decompression, file I/O: work that mostly releases the
GIL) overlaps the steps run on the current one."""

from __future__ import annotations

import queue
import threading
from typing import Iterator, TypeVar

T = TypeVar("T")

_DONE = object()


def prefetch(items: Iterator[T], depth: int = 2) -> Iterator[T]:
    """Yield the items of ``items`` in their order, produced by a background thread at most ``depth`` items ahead
    (memory: ``depth`` + 2 items at most). An exception raised by ``items`` is raised here, at the point in the
    sequence where it happened. Closing this generator early (or an exception in the consumer) stops the thread
    at its next item and closes ``items``."""
    q: queue.Queue[tuple[object, BaseException | None]] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def put(entry: tuple[object, BaseException | None]) -> bool:
        while not stop.is_set():
            try:
                q.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((_DONE, None))
        except BaseException as e:  # handed to the consumer, raised there
            put((_DONE, e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, name="curate-prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if error is not None:
                raise error
            if item is _DONE:
                return
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        thread.join()
