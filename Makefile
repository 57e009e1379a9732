# The README's two commands: `make demo` and `make test`. Both bootstrap .venv on a fresh clone.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_CPU := torch==2.13.0
HAS_GPU := $(shell command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && echo yes)

.PHONY: install demo test test-fast bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# Without a GPU, take the pinned CPU build first so `torch>=2.1` does not pull CUDA wheels.
	$(if $(HAS_GPU),,$(PY) -m pip install -q $(TORCH_CPU))
	$(PY) -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/lamcap demo

# The linter first (seconds); then two xdist workers, each taking whole modules (module fixtures are built
# once); then, alone on the machine, the tests that compare measured time with a prediction (marked `serial`).
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -ra -n 2 --dist loadfile -m "not serial" --durations=15
	$(PY) -m pytest -q -ra -m serial

test-fast: $(STAMP)
	$(VENV)/bin/ruff check .
	$(PY) -m pytest -q -m "not slow" -n 2 --dist loadfile

bench: $(STAMP)
	$(PY) benchmarks/kernel.py

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
