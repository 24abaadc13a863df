# keytools: `make demo` and `make test` work on a fresh machine (Python 3.10+, root for apt-get).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KEYTOOLS := $(VENV)/bin/keytools
DEMO_STATE ?= $(CURDIR)/.sandbox
PYTEST_ARGS ?=

.PHONY: demo test bench system-deps install clean demo-down

# system-deps first: on a fresh Debian, `python3 -m venv` itself needs python3-venv.
$(VENV)/.installed: pyproject.toml | system-deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[sandbox,swift,test]'
	touch $@

install: $(VENV)/.installed

system-deps:
	PYTHON=$(PYTHON) ./scripts/install-system-deps.sh

# The demo runs every feature's step, Swift's included: it needs the same servers as the tests.
demo: install system-deps
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

# Coverage-guided fuzzing of every parser (tests/fuzz/run.py; docs/development.md "Fuzzing").
FUZZ_TARGET ?= all
FUZZ_INPUTS ?= 10000
FUZZ_SECONDS ?= 900
FUZZ_CORPUS ?= $(CURDIR)/fuzz-corpus
.PHONY: fuzz
fuzz: install
	PYTHONPATH=$(CURDIR) $(PY) tests/fuzz/run.py --target $(FUZZ_TARGET) --inputs $(FUZZ_INPUTS) \
		--seconds $(FUZZ_SECONDS) --corpus $(FUZZ_CORPUS)
