# Two commands a user needs: `make demo` (embedded offline demo, default target) and `make test` (whole suite);
# `make report` writes report.html of the runs on disk.
PYTHON ?= python3.11
VENV ?= .venv
PY := $(VENV)/bin/python
SNAKEMAKE := $(PY) -m snakemake
CORES ?= 2
export NO_ALBUMENTATIONS_UPDATE := 1
export HF_HUB_OFFLINE := 1

.PHONY: venv demo report rehearsal test unit lint dag clean-demo

venv: $(VENV)/.installed

$(VENV)/.installed: requirements.lock.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip>=24"
	$(PY) -m pip install -q -r requirements.lock.txt
	$(PY) -m pip check
	touch $@

# Quiet console by default (config key `console`); `make demo V=1` prints every job's detail and the rule output.
demo: venv
	$(SNAKEMAKE) --cores $(CORES) $(if $(V),--config console=verbose)

# report.html: the report pages of every run on disk (rule report_all: overviews, cards, eval tables, paper outputs).
report: venv
	$(SNAKEMAKE) --cores $(CORES) report_all
	$(SNAKEMAKE) --report report.html report_all

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
