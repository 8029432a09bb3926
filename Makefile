# Two commands for a newcomer (see README):
#   make demo   set up .venv/slicer-5.12 and run the built-in example
#   make test   set up one environment per Slicer pin set and run the whole suite in each
PYTHON ?= python3
VENVS := .venv
PINS := slicer-5.12 slicer-5.10

.PHONY: demo test bench clean
.SECONDARY:

$(VENVS)/%/.ready: requirements/%.txt requirements/test.txt pyproject.toml
	rm -rf $(VENVS)/$*
	$(PYTHON) -m venv $(VENVS)/$*
	$(VENVS)/$*/bin/python -m pip install -q --upgrade pip
	$(VENVS)/$*/bin/python -m pip install -q -r requirements/$*.txt -r requirements/test.txt -c requirements/$*.txt
	$(VENVS)/$*/bin/python -m pip install -q --no-deps -e .
	touch $@

demo: $(VENVS)/slicer-5.12/.ready
	$(VENVS)/slicer-5.12/bin/irregular-series demo build/demo

test: $(foreach p,$(PINS),$(VENVS)/$(p)/.ready)
	@set -e; for p in $(PINS); do \
	  echo "=== tests with $$p pins: $$($(VENVS)/$$p/bin/python -c 'import sys,numpy,pydicom,scipy; print(sys.version.split()[0], "numpy", numpy.__version__, "pydicom", pydicom.__version__, "scipy", scipy.__version__)')"; \
	  $(VENVS)/$$p/bin/python -m pytest -q $(PYTEST_ARGS); \
	done

bench:
	benchmarks/run

clean:
	rm -rf $(VENVS) build
