# Two commands set up everything on a fresh machine:
#   make demo   create .venv, install sslmon, score the sample checkpoints on the embedded dataset
#   make test   create .venv, install sslmon with test extras, run ruff and the test suite
#   make test-fast   the same without the tests marked slow (a few minutes less)
VENV ?= .venv
PY := $(VENV)/bin/python
SSLMON := $(VENV)/bin/sslmon

.PHONY: install demo test test-fast bench clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $@

demo: install
	$(SSLMON) score sample_checkpoints --limit 2000

test: install
	$(PY) -m ruff check .
	$(PY) -m pytest

test-fast: install
	$(PY) -m ruff check .
	$(PY) -m pytest -m "not slow"

bench: install
	$(PY) bench/bench_metrics.py
	$(PY) bench/bench_pipeline.py
	$(PY) bench/bench_executors.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
