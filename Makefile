# `make demo` and `make test` work on a fresh clone; both create .venv when needed.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# These torch builds lie on this project's machines' disk; anything else downloads gigabytes.
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1
DEMO_IMAGE ?= examples/chelsea.jpg
PYTEST_ARGS ?=

.PHONY: venv demo test bench clean-venv

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PINS)
	$(PY) -m pip install -q -e '.[train,test,ray]'
	@# Bytecode now, as a wheel install does: with PYTHONDONTWRITEBYTECODE set, every start would compile.
	$(PY) -m compileall -q imgan plugins > /dev/null
	touch $@

demo: venv
	@mkdir -p demo-output
	$(VENV)/bin/imgan stylize $(DEMO_IMAGE) --style monet-water-lilies -o demo-output/chelsea.monet.jpg --overwrite --compare demo-output/chelsea.compare.jpg
	@echo "demo output: $(CURDIR)/demo-output/chelsea.monet.jpg (side by side: demo-output/chelsea.compare.jpg)"

test: venv
	$(PY) -m pytest -q $(PYTEST_ARGS)

bench: venv
	$(PY) bench/run.py

clean-venv:
	rm -rf $(VENV)
