# speechllm — the two commands a new user runs: `make demo` and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS_TEST := dev,comet,demo
EXTRAS_DEMO := demo,comet

.PHONY: test demo study install lint bench docs clean

$(VENV)/.installed-test: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh $(EXTRAS_TEST)
	touch $@

$(VENV)/.installed-demo: pyproject.toml scripts/setup.sh
	VENV=$(VENV) bash scripts/setup.sh $(EXTRAS_DEMO)
	touch $@

install: $(VENV)/.installed-test

test: $(VENV)/.installed-test
	$(PY) -m pytest -q -rs

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check speechllm tests benchmarks
	$(VENV)/bin/ruff format --check speechllm tests benchmarks

# The demo (docs/demo.md): `make demo DEMO_MINUTES=10` scales its time budget (default 12 minutes).
DEMO_MINUTES ?= 12
demo: $(VENV)/.installed-demo
	DEMO_MINUTES=$(DEMO_MINUTES) bash recipes/demo/run.sh

# The paper's study in miniature (docs/study.md): `make study STUDY_MINUTES=8` sets the training
# minutes per cell (default 3: about two hours on 2 cores); `STUDY_PREALIGN_STEPS=400` pre-aligns every
# cell for the same steps instead (the paper's equal training; Base and CTC then take longest); an
# interrupted study resumes.
STUDY_MINUTES ?= 3
study: $(VENV)/.installed-demo
	STUDY_MINUTES=$(STUDY_MINUTES) bash recipes/study/run.sh

bench: $(VENV)/.installed-test
	for script in benchmarks/*.py; do case $$script in */_*) ;; *) $(PY) $$script || exit 1;; esac; done

docs: $(VENV)/.installed-test
	$(VENV)/bin/pip install -q -e ".[docs]" && $(VENV)/bin/mkdocs build

clean:
	rm -rf runs demo_out study_out data/tones .pytest_cache
