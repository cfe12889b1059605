# The two entry points: `make demo` and `make test`. Each creates or updates .venv and installs
# everything it needs, so a fresh machine with Python >= 3.11 is enough.
# `make test-min` checks the declared floors: its own .venv-min, every runtime dependency pinned to
# the minimum pyproject.toml declares (tools/min_constraints.py), and the tests marked `smoke`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
VENV_MIN  ?= .venv-min
BIN_MIN   := $(VENV_MIN)/bin
STAMP_MIN := $(VENV_MIN)/.installed-stamp
CHECK_PYTHON := @$(PYTHON) -c 'import sys; v = sys.version_info; sys.exit(0 if v >= (3, 11) else "iotcprov needs Python >= 3.11; found %d.%d (set PYTHON=python3.11)" % v[:2])'

.PHONY: demo test test-browser test-min lint bench clean

$(STAMP): pyproject.toml setup.py
	$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

# The test extras stay unpinned; pip must still resolve them next to the pinned floors.
$(STAMP_MIN): pyproject.toml setup.py tools/min_constraints.py
	$(CHECK_PYTHON)
	$(PYTHON) -m venv $(VENV_MIN)
	$(PYTHON) tools/min_constraints.py > $(VENV_MIN)/constraints.txt
	$(BIN_MIN)/python -m pip install --quiet --disable-pip-version-check \
		-c $(VENV_MIN)/constraints.txt -e '.[test]'
	@touch $(STAMP_MIN)

demo: $(STAMP)
	$(BIN)/iotcprov demo

# Two workers by default, a test module each at a time (pytest-xdist): the suite mostly waits on
# virtual boards and servers, so that about halves its time. TEST_WORKERS=1 runs one process.
TEST_WORKERS ?= 2

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest $(if $(filter-out 1,$(TEST_WORKERS)),-n $(TEST_WORKERS) --dist loadscope) $(PYTEST_ARGS)

# Only the dashboards' browser tests (headless Chromium: Debian's `chromium` package); they skip,
# saying why, where it is missing. `make test` runs them too.
test-browser: $(STAMP)
	$(BIN)/python -m pytest -m browser tests/dashboard $(PYTEST_ARGS)

test-min: $(STAMP_MIN)
	@echo "installed at the declared floors:"
	$(BIN_MIN)/python tools/min_constraints.py --check
	$(BIN_MIN)/python -m pytest -m smoke -p no:cacheprovider $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .

bench: $(STAMP)
	@for script in bench/bench_*.py; do echo "== $$script"; $(BIN)/python $$script || exit 1; done

clean:
	rm -rf $(VENV) $(VENV_MIN) build *.egg-info host/*.egg-info .pytest_cache .ruff_cache .hypothesis
