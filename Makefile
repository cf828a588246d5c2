# `make demo` and `make test` work on a fresh 2-core CPU machine: they build .venv,
# install the pinned torch builds and the package, fetch Fashion-MNIST, then run.
PY      ?= python3
VENV    := .venv
VPY     := $(VENV)/bin/python
STAMP   := $(VENV)/.installed
FMNIST  := /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz

.PHONY: setup demo test lint bench seed figures docs

$(STAMP): pyproject.toml
	test -x $(VPY) || $(PY) -m venv $(VENV)
	$(VPY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(VPY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

$(FMNIST):
	@if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	  apt-get update -q && apt-get install -y -q dataset-fashion-mnist; \
	else \
	  echo "Fashion-MNIST missing: run 'sudo apt-get install dataset-fashion-mnist' or pass --data-dir"; \
	fi

setup: $(STAMP) $(FMNIST)

demo: setup
	$(VPY) -m studies.hessian --model vit-ti --preset quick

test: setup
	$(VPY) -m pytest -x tests

lint: setup
	$(VPY) -m ruff check .

# the API reference, built from the docstrings (pdoc) into docs/api/ (not committed)
docs: setup
	$(VPY) -m pdoc -o docs/api vitprobe

# ours vs the peers; each writes benchmarks/results/*.json, rendered to benchmarks/RESULTS.md
# the peers (PyHessian, curvlinops) are a benchmark-only extra, installed here, not by `make test`
bench: setup
	$(VPY) -m pip install -q -e ".[bench]"
	$(VPY) -m benchmarks.train_throughput
	$(VPY) -m benchmarks.hessian_vs_peers
	$(VPY) -m benchmarks.trace_vs_pyhessian
	$(VPY) -m benchmarks.cli_latency
	$(VPY) -m benchmarks.hvp_backends
	$(VPY) -m benchmarks.render

# The small preset's seeds, one per sitting: train seed $(SEED) (two trainings at a time, one
# thread each; ~2.2 h on 2 cores), record each model as it ends, then probe and record it.
SEED ?= 0
seed: setup
	$(VPY) -m studies.seeds --preset small --seed $(SEED) --quiet
	$(VPY) -m studies.reproduce --preset small --seeds $(SEED) --quiet

# The committed gallery and findings table, from the committed records alone (no training,
# no runs/): every seed recorded under figures/records/small.
figures: setup
	$(VPY) -m studies.reproduce --preset small --report-only --figures-dir figures --quiet
