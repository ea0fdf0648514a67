# The README's interface. Every target installs what it needs: a fresh clone only needs Python 3.11+ and Go.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: help install controlplane test lint clean

help:
	@echo "make test          create .venv, install Lanes, build/reuse the control plane, run every test"
	@echo "make lint          ruff and mypy"
	@echo "make controlplane  build (or reuse) etcd, kube-apiserver, ... into ~/.cache/lanes/<version>/bin"

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "[make] creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "[make] installing Lanes and its dev tools into $(VENV) (first time ~1-2 min)"
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip
	@$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

install: $(STAMP)

controlplane: $(STAMP)
	@$(PY) -m webhook.envtest ensure

test: controlplane
	$(PY) -m pytest

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy webhook helper

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
