# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing and install the package into it (editable).

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/geoalloc demo

test: install
	bash scripts/test.sh

bench: install
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
	bash scripts/bench.sh

clean:
	rm -rf $(VENV) demo-output .pytest_cache tests/artifacts
