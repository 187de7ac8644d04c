# `make run` and `make test` set the project up first when .venv is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= egl

.PHONY: setup run test bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e '.[dev]'
	touch $@

setup: $(VENV)/.installed

run: setup
	$(PY) train/agent.py --obs state

test: setup
	$(PY) -m pytest -q tests

bench: setup
	$(PY) scripts/bench_planner.py --device cpu

clean:
	rm -rf $(VENV) *.egg-info
