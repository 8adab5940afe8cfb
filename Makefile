# The two commands that matter:
#   make demo   - set up ./.venv if needed, run the local demo (cloud + gateway + 3 simulated patients)
#   make test   - set up ./.venv if needed, run the whole test suite (unit, quality gates, e2e, ...)
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DURATION ?= 60
EXTRAS := edge,sim,cloud,demo,eval,learn,dev

.PHONY: demo test venv proto clean

$(VENV)/.installed: pyproject.toml constraints.txt edge/dsp/_rpeaks_kernel.c edge/dsp/_template_kernel.c
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "cardiogate needs Python >= 3.11"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[$(EXTRAS)]"
	touch $@

venv: $(VENV)/.installed

demo: $(VENV)/.installed
	$(VENV)/bin/cardiogate demo --duration $(DURATION)

test: $(VENV)/.installed
	$(PY) -m pytest

proto: $(VENV)/.installed
	$(PY) -m cardiogate.proto.generate

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache *.egg-info
