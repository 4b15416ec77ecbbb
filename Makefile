# Set-up and main jobs. Needs only python3 (with venv) and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
CONSTRAINTS := constraints/dev.txt

.PHONY: demo test test-slow bench install-core install-dev clean

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

test: install-dev
	$(PY) -m pytest -q

test-slow: install-dev
	$(PY) -m pytest -q -m slow

bench: install-dev
	$(PY) -m pytest benchmarks -q --benchmark-only

clean:
	rm -rf $(VENV) build *.egg-info .benchmarks
