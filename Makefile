# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install, train on real data, show the evaluation and a few predictions
#   make test   create .venv, install with test tools, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install system-packages clean benchmark

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash examples/demo.sh $(PY)

test: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest -q

benchmark: $(STAMP)
	$(PY) benchmarks/run_tabular.py

clean:
	rm -rf $(VENV) runs demo-data .pytest_cache
