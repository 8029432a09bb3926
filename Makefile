# Two commands for a newcomer (see README):
#   make demo   set up .venv/slicer-5.12 and run the built-in example
#   make test   set up one environment per Slicer pin set and run the whole suite in each
PYTHON ?= python3
VENVS := .venv
PINS := slicer-5.12 slicer-5.10

.PHONY: demo test bench clean dicom-validator
.SECONDARY:

$(VENVS)/%/.ready: requirements/%.txt requirements/test.txt pyproject.toml
	rm -rf $(VENVS)/$*
	$(PYTHON) -m venv $(VENVS)/$*
	$(VENVS)/$*/bin/python -m pip install -q --upgrade pip
	$(VENVS)/$*/bin/python -m pip install -q -r requirements/$*.txt -r requirements/test.txt -c requirements/$*.txt
	$(VENVS)/$*/bin/python -m pip install -q --no-deps -e .
	touch $@

demo: $(VENVS)/slicer-5.12/.ready
	$(VENVS)/slicer-5.12/bin/irregular-series demo build/demo --force

# dciodvfy (Debian's dicom3tools) validates the DICOM output; installed when missing and running as
# root (as CI does). Without it that test skips, saying so.
dicom-validator:
	@command -v dciodvfy >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dicom3tools) >/dev/null \
	      || echo "could not install dicom3tools: the DICOM validator test will skip"; \
	  else echo "dciodvfy not found (as root: apt-get install dicom3tools): the DICOM validator test will skip"; fi; }

test: dicom-validator $(foreach p,$(PINS),$(VENVS)/$(p)/.ready)
	$(VENVS)/slicer-5.12/bin/python -m ruff check --no-cache IrregularSeries Testing benchmarks
	$(VENVS)/slicer-5.12/bin/python -m mypy
	@set -e; for p in $(PINS); do \
	  echo "=== tests with $$p pins: $$($(VENVS)/$$p/bin/python -c 'import sys,numpy,pydicom; print(sys.version.split()[0], "numpy", numpy.__version__, "pydicom", pydicom.__version__)')"; \
	  $(VENVS)/$$p/bin/python -m pytest -q $(PYTEST_ARGS); \
	done

bench:
	benchmarks/run

clean:
	rm -rf $(VENVS) build
