# Set-up and main jobs. Needs only python3 (with venv) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := constraints/dev.txt

.PHONY: demo test test-slow bench docs install-core install-dev clean

$(VENV)/.created:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	touch $@

install-core: $(VENV)/.created
	$(PIP) install -q -c $(CONSTRAINTS) -e .

install-dev: $(VENV)/.created
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[dev]"

demo: install-core
	$(VENV)/bin/evostrat demo

# The suite in four workers (pytest-xdist), each test file in one worker. Four, not one per CPU: on
# a 2-CPU machine kept busy by other work the workers then hold 4/6 of the CPUs, not 2/4 (there, with
# two busy loops running, 13:37 against 16:26; alone 8:39 against 8:13).
PARALLEL := -n 4 --dist loadfile

test: install-dev
	$(PY) -m pytest -q $(PARALLEL)

test-slow: install-dev
	$(PY) -m pytest -q -m slow $(PARALLEL)

# The peers (the bench extra, pinned) and every suite; the JSON feeds benchmarks/report.py.
bench: install-dev
	$(PIP) install -q -c $(CONSTRAINTS) -e ".[dev,bench]"
	$(PY) -m pytest benchmarks -q -p no:cacheprovider --benchmark-only --benchmark-json=bench.json
	$(PY) benchmarks/report.py bench.json -o bench.md

# The documentation site (warnings are errors); tests/test_docs.py builds it too under `make test`.
docs: install-dev
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

clean:
	rm -rf $(VENV) build *.egg-info .benchmarks site
