# unrollgrad: `make demo` and `make test` are all a fresh machine needs.
# Both create .venv (once), install the package with its test and bench extras, and make sure
# Graphviz's `dot` is there (installed with apt-get when run as root).

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stamp
APT    := DEBIAN_FRONTEND=noninteractive apt-get -q -y -o Dpkg::Use-Pty=0

# One line per benchmark module, each run as `python -m <module> $(BENCH_ARGS)`.
BENCHMARKS += benchmarks.scalar
BENCHMARKS += benchmarks.viz
BENCHMARKS += benchmarks.tensor
BENCHMARKS += benchmarks.rnn
BENCH_ARGS ?=

.PHONY: help venv dot test demo bench lint torch-reference clean distclean

help:
	@echo "make demo       train the tiny RNN demo (sets up .venv and Graphviz first)"
	@echo "make test       ruff + pytest (sets up .venv and Graphviz first)"
	@echo "make bench      run the benchmarks: $(BENCHMARKS) (options: BENCH_ARGS=--quick)"
	@echo "make lint       ruff only"
	@echo "make torch-reference  install the torch extra and rewrite tests/data/torch_rnn_reference.npz"
	@echo "make venv       create .venv and install unrollgrad[test,bench] in editable mode"
	@echo "make dot        make sure Graphviz's dot is installed"
	@echo "make clean      remove caches and build files; distclean also removes .venv"

venv: $(STAMP)

# Rebuilt only when the package metadata changes, so a second run does nothing.
$(STAMP): setup.cfg pyproject.toml
	@py=$(PYTHON); [ -x $(BIN)/python ] && py=$(BIN)/python; \
	if ! command -v $$py >/dev/null 2>&1; then \
		echo "error: $$py not found; unrollgrad needs Python >= 3.10 (try: make PYTHON=python3.11 ...)" >&2; exit 1; \
	fi; \
	if ! $$py -c 'import sys; sys.exit(sys.version_info < (3, 10))'; then \
		echo "error: unrollgrad needs Python >= 3.10, but $$py is $$($$py -V 2>&1)" >&2; \
		echo "       point PYTHON at a newer one, e.g. make PYTHON=python3.11 ... (and rm -rf $(VENV))" >&2; \
		exit 1; \
	fi
	@if [ ! -x $(BIN)/python ]; then \
		echo "Creating $(VENV) with $(PYTHON) ($$($(PYTHON) -V 2>&1))"; \
		if ! $(PYTHON) -m venv $(VENV) >/dev/null 2>&1; then \
			rm -rf $(VENV); \
			if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
				echo "$(PYTHON) -m venv failed (no ensurepip); installing python3-venv with apt-get"; \
				$(APT) update && $(APT) install --no-install-recommends python3-venv || exit 1; \
			fi; \
			$(PYTHON) -m venv $(VENV) || { rm -rf $(VENV); \
				echo "error: '$(PYTHON) -m venv' failed; on Debian/Ubuntu install the venv module:" \
				     "sudo apt-get install python3-venv" >&2; exit 1; }; \
		fi; \
	fi
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	@touch $(STAMP)

dot:
	@if ! command -v dot >/dev/null 2>&1; then \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			echo "Installing Graphviz (dot) with apt-get"; \
			$(APT) update && $(APT) install --no-install-recommends graphviz || exit 1; \
		else \
			echo "error: Graphviz's dot is not installed; install it, e.g. sudo apt-get install graphviz" \
			     "(Debian/Ubuntu) or brew install graphviz (macOS)" >&2; \
			exit 1; \
		fi; \
	fi

test: venv dot
	$(BIN)/ruff check .
	$(BIN)/pytest

demo: venv dot
	$(BIN)/python -m demos.tiny_rnn

# PyTorch is a peer in benchmarks.rnn only: the pinned CPU build, installed on first use.
bench: venv
	@$(BIN)/python -c 'import torch' 2>/dev/null || $(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[torch]'
	@set -e; for module in $(BENCHMARKS); do \
		echo "== $$module"; $(BIN)/python -m $$module $(BENCH_ARGS); \
	done

lint: venv
	$(BIN)/ruff check .

# PyTorch is needed only to write the reference numbers the interop tests read.
torch-reference: venv
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[torch]'
	$(BIN)/python tools/make_torch_reference.py

clean:
	rm -rf build dist *.egg-info .pytest_cache .ruff_cache .hypothesis
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
