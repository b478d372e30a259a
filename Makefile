# WorldScape ROS. `make demo` runs the product; `make test` lints, type-checks and tests it.
# Both set up what is missing first (idempotent; see scripts/setup.sh).
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export MUJOCO_GL ?= osmesa
export PYTHONDONTWRITEBYTECODE := 1

.PHONY: setup test lint typecheck pytest demo demo-manip clean

setup:
	@bash scripts/setup.sh

lint: setup
	$(PY) -m ruff check .

typecheck: setup
	$(PY) -m mypy worldscape_ros

pytest: setup
	$(PY) -m pytest -n 2 -q tests

test: lint typecheck pytest

demo: setup
	@bash scripts/demo.sh nav

demo-manip: setup
	@bash scripts/demo.sh manip

clean:
	rm -rf $(VENV) build install log ros2_ws/build ros2_ws/install ros2_ws/log
