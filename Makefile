# Two commands a user needs: `make demo` (embedded offline demo, default target) and `make test` (whole suite).
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(PY) -m snakemake
CORES ?= 2
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1

.PHONY: venv demo rehearsal test unit lint dag clean-demo

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -r requirements.lock.txt
	$(PY) -m pip check
	touch $@

demo: venv
	$(SNAKEMAKE) --cores $(CORES)

# The flagship configuration in miniature against local endpoints (README "Rehearsal"); needs wordnet-base.
rehearsal: venv
	$(PY) tests/rehearsal/run.py --cores $(CORES)

test: venv
	$(PY) -m pytest -q -ra tests

unit: venv
	$(PY) -m pytest -q tests/unit

lint: venv
	$(SNAKEMAKE) --lint

clean-demo:
	rm -rf results/demo resources/kg/demo resources/eval/demo_heldout logs/demo benchmarks/demo
	rm -rf results/rehearsal resources/kg/rehearsal resources/rehearsal logs/rehearsal benchmarks/rehearsal
