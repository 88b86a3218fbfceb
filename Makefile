# The whole set-up is `make demo` or `make test` on a fresh machine.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
BIN    := $(VENV)/bin
# lxml is pinned everywhere: minimal-HTML bytes depend on the libxml2 its wheel bundles.
# CPU-only machines pin the local CPU build of torch (a looser pin pulls several GB of CUDA packages);
# with a GPU, pip picks the CUDA build.
PINS   := lxml==6.1.3 $(if $(shell command -v nvidia-smi 2>/dev/null),,torch==2.13.0)
DEMO   := demo-output

.PHONY: setup browser test test-fast lint format demo bench clean

$(STAMP): pyproject.toml Makefile
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[test]' $(PINS)
	# taming-transformers' metadata pulls torchvision + pytorch-lightning; we only use its torch modules.
	$(PY) -m pip install -q --no-deps taming-transformers==0.0.1
	touch $(STAMP)

setup: $(STAMP)

# Headless Chromium for the page tests and the demo's screenshots: Debian's chromium + chromium-driver from
# apt, only when chromedriver is absent and apt-get exists (as root, else through sudo). Nothing else is
# downloaded; where it cannot be installed the browser tests skip, saying why.
SUDO := $(if $(filter 0,$(shell id -u)),,sudo)
browser:
	@command -v chromedriver >/dev/null || ! command -v apt-get >/dev/null || \
	  { $(SUDO) apt-get update -qq && $(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver; } || \
	  echo "make: could not install chromium + chromium-driver; the browser tests will be skipped" >&2

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: setup
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

# pytest exits 5 when it collected nothing: a failure here, said plainly.
test: lint browser
	$(PY) -m pytest || { s=$$?; [ $$s -eq 5 ] && echo "make test: no tests were collected" >&2; exit $$s; }

test-fast: setup browser
	$(PY) -m pytest -m "not slow"

# Web pages -> shards -> tokens -> a tiny model -> generated HTML and images, all on the bundled sample.
demo: setup browser
	rm -rf $(DEMO)
	$(BIN)/cm3-data run --output $(DEMO)/shards
	$(BIN)/cm3-data verify $(DEMO)/shards
	$(BIN)/cm3-data view $(DEMO)/shards --out $(DEMO)/view.html
	$(BIN)/cm3-train tokenizer --data $(DEMO)/shards --vocab-size 4000 --out $(DEMO)/tokenizer
	$(BIN)/cm3-train tokenize --data $(DEMO)/shards --tokenizer $(DEMO)/tokenizer --out $(DEMO)/tokens
	$(BIN)/cm3-train train --data $(DEMO)/tokens --preset tiny out=$(DEMO)/run seq_len=512 batch_size=8 \
	  max_steps=300 warmup_steps=30 lr=2e-3 eval_every=100 ckpt_every=100 log_every=25
	$(BIN)/cm3-generate $(DEMO)/run --out $(DEMO)/generate --num-samples 2 --temperature 0.9 --top-p 0.95 \
	  --prompt '{"mode": "unconditional_image"}' \
	  --prompt '{"mode": "conditional_image", "text": "A photo of a cat."}' \
	  --prompt '{"mode": "text_infill", "html": "<p>The public library reopened on <mask:0> after a renovation.</p>"}' \
	  --prompt '{"mode": "score", "prompt": "<p>The public library reopened on", "candidates": [" Monday after a renovation.", " the moon with a cat."]}' \
	  --prompt '{"mode": "entity", "html": "<p><a title=\"<mask:0>\">Cats</a> are small domesticated carnivores.</p>", "candidates": ["Cat", "Library"]}' \
	  --prompt '{"mode": "link", "html": "<p><a title=\"<mask:0>\">Cats</a> are small domesticated carnivores.</p>", "candidates": ["Cat", "Library"]}' \
	  --prompt '{"mode": "continue", "html": "<img"}' \
	  --prompt '{"mode": "summarize", "document": "The public library reopened on Monday after a renovation that took two years.", "size_hint": 16}'
	$(BIN)/cm3-generate $(DEMO)/run --out $(DEMO)/caption \
	  --prompt '{"mode": "causal_caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png"}' \
	  --prompt '{"mode": "masked_caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png"}' \
	  --prompt '{"mode": "image_infill", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png", "span": [128, 256]}' \
	  --prompt '{"mode": "caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png"}' \
	  --prompt '{"mode": "caption", "image": "$(DEMO)/generate/0000-unconditional_image-0-img0.png", "samples": 8, "top": 2}'
	printf '%s\n' \
	  '{"task": "summarization", "document": "The public library reopened on Monday after a renovation that took two years.", "summary": "Library reopens after renovation.", "size_hint": 12}' \
	  '{"task": "disambiguation", "html": "<p><a title=\"<mask:0>\">Cats</a> are small domesticated carnivores.</p>", "candidates": ["Cat", "Library"], "answer": "Cat"}' \
	  '{"task": "linking", "text": "Cats are small domesticated carnivores.", "mention": [0, 4], "candidates": ["Cat", "Library"], "answer": "Cat"}' \
	  > $(DEMO)/tasks.jsonl
	$(BIN)/cm3-generate eval $(DEMO)/run $(DEMO)/tasks.jsonl --out $(DEMO)/eval
	$(PY) -m pipeline.screenshot --out $(DEMO)/screenshots report=$(DEMO)/shards/_meta/report.html \
	  view=$(DEMO)/view.html generate=$(DEMO)/generate/index.html caption=$(DEMO)/caption/index.html
	@echo "Open $(DEMO)/shards/_meta/report.html, $(DEMO)/view.html, $(DEMO)/generate/index.html," \
	  "$(DEMO)/caption/index.html (PNGs of them in $(DEMO)/screenshots/)"

bench: setup
	for b in bench/*.py; do $(PY) $$b || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info $(DEMO)
