# Two commands do all the set-up on a fresh machine:
#   make demo   create .venv, install, train on real data, show the evaluation and a few predictions
#   make test   create .venv, install with test tools, run the test suite
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test install system-packages clean benchmark suite

# Debian packages the tests use (speech is synthesised with espeak-ng, report pages are opened in
# chromium); installed once, when missing.
SYSTEM_PACKAGES := espeak-ng chromium
system-packages:
	@{ command -v espeak-ng && command -v chromium; } >/dev/null 2>&1 || { \
	  echo "make test needs two Debian packages that are missing: espeak-ng (the audio tests synthesise speech)"; \
	  echo "and chromium (the report tests open report pages in a real browser). Installing them with apt-get"; \
	  echo "(about 100 packages, 475 MB with dependencies)..."; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update && apt-get install -y $(SYSTEM_PACKAGES); \
	  else sudo apt-get update && sudo apt-get install -y $(SYSTEM_PACKAGES); fi; }

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[all,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	bash examples/demo.sh $(PY)

test: $(STAMP) system-packages
	$(VENV)/bin/ruff check src tests benchmarks examples
	$(PY) -m pytest -q

benchmark: $(STAMP) system-packages
	$(PY) benchmarks/run_tabular.py
	$(PY) benchmarks/run_media.py
	$(PY) benchmarks/run_capacity.py

# The accuracy suite (issue 11): 31 datasets, deepwell's defaults beside classical baselines; about an hour.
# Its text sets read apt's package lists and the installed manual pages, its letters the installed fonts.
suite: $(STAMP) system-packages
	$(PY) -m pip install --quiet -e ".[bench]"
	$(PY) -m benchmarks.suite.run

clean:
	rm -rf $(VENV) runs demo-data .pytest_cache
