# keytools: `make demo` and `make test` work on a fresh machine (Python 3.10+, root for apt-get).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KEYTOOLS := $(VENV)/bin/keytools
DEMO_STATE ?= $(CURDIR)/.sandbox
PYTEST_ARGS ?=

.PHONY: demo test bench system-deps install clean demo-down

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[sandbox,swift,test]'
	touch $@

install: $(VENV)/.installed

system-deps:
	./scripts/install-system-deps.sh

demo: install
	$(KEYTOOLS) sandbox up --state-dir $(DEMO_STATE)
	$(PY) scripts/demo.py --state-dir $(DEMO_STATE)

demo-down:
	-$(KEYTOOLS) sandbox down --state-dir $(DEMO_STATE)

test: install system-deps
	$(PY) -m pytest $(PYTEST_ARGS)

bench: install system-deps
	$(PY) benchmarks/run.py

clean: demo-down
	rm -rf $(VENV) .sandbox bench-results *.egg-info
