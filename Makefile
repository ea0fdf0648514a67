# The README's interface. Every target installs what it needs: a fresh clone only needs Python 3.11+ and Go.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

# Debian packages the tests and benchmarks drive for real (shellcheck for kind/ scripts; wrk and haproxy for the
# benchmarks and the rollout lab; buildah, mmdebstrap and runc build the images from the Dockerfiles without a
# registry or a Docker daemon, devtools/images). Installed with apt-get when missing and we are root, else we say
# what to run.
APT_PACKAGES := shellcheck wrk haproxy buildah mmdebstrap runc valgrind
APT_COMMANDS := shellcheck wrk haproxy buildah mmdebstrap runc valgrind callgrind_control

.PHONY: help install system-deps controlplane realnode realnode-up dataplane test test-fast demo bench lint clean

help:
	@echo "make test          create .venv, install Lanes, build/reuse the control plane, run every test"
	@echo "make test-fast     the tests that need no control plane and are not marked slow (< 2 min on 2 cores)"
	@echo "make demo          examples/ on a real node (root) or kwok: what Lanes injected, failed requests plain vs Lanes"
	@echo "make bench         benchmarks (docs/performance.md): about an hour on 2 cores, results in bench/results/"
	@echo "make lint          ruff and mypy"
	@echo "make controlplane  build (or reuse) etcd, kube-apiserver, ... into ~/.cache/lanes/<version>/bin"
	@echo "make realnode      build (or reuse) the real test node: kubelet, kube-proxy, kubectl, containerd, runc, CNI"
	@echo "make realnode-up   start a real node (root; private namespaces) and keep it until Ctrl-C"
	@echo "make dataplane     build (or reuse) Traefik, the Gateway API data plane of the routing tests and the demo"

$(STAMP): pyproject.toml
	@test -x $(PY) || { echo "[make] creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@echo "[make] installing Lanes and its dev tools into $(VENV) (first time ~1-2 min)"
	@$(PY) -m pip install -q --disable-pip-version-check --upgrade pip > $(VENV)/pip-install.log 2>&1 && \
	 $(PY) -m pip install -q --disable-pip-version-check -e '.[dev]' >> $(VENV)/pip-install.log 2>&1 || \
	 { tail -40 $(VENV)/pip-install.log; echo "error: pip install failed; full log: $(VENV)/pip-install.log"; exit 1; }
	@touch $@

install: $(STAMP)

system-deps:
	@missing=""; for c in $(APT_COMMANDS); do command -v $$c >/dev/null || missing="$$missing $$c"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "[make] installing Debian packages:$$missing (~1 min)"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	  else \
	    echo "error: missing$$missing; run: sudo apt-get install -y $(APT_PACKAGES)"; exit 1; \
	  fi; \
	fi

controlplane: $(STAMP)
	@$(PY) -m devtools.controlplane ensure

# The real test node (devtools/realnode): kubelet, kube-proxy and kubectl from the control plane's module (after
# it: they share its Go build cache, ~3 min), containerd from its module (~1-2 min), runc/CNI/iptables unpacked
# from Debian packages (~10-90 s), the pause image, and the project's images (devtools.images). Needs root to run
# a node, not to build one.
realnode: controlplane system-deps
	@$(PY) -m devtools.realnode ensure

realnode-up: realnode
	$(PY) -m devtools.realnode up

# Traefik, the Gateway API data plane of the routing tests and the demo (devtools/dataplane/traefik.py): ~6 min of
# both cores cold (at nice 10), cached under ~/.cache/lanes/traefik-<version>. Built here, before pytest, so a cold
# build is never cut short by a test's timeout.
dataplane: controlplane
	@$(PY) -m devtools.dataplane.traefik ensure > /dev/null

test: controlplane system-deps realnode dataplane
	$(PY) -m pytest

# Starts no control plane, so it needs none built (the chart tests build helm on first use): the `controlplane`
# mark is set by tests/conftest.py on every test that gets one through its fixtures, and by hand on the few that
# start their own. `slow` (wheel installs from PyPI, the benchmark smoke runs) is left out too, to keep this a
# quick loop; `make test` (and CI) runs everything.
test-fast: $(STAMP) system-deps
	$(PY) -m pytest -m "not controlplane and not slow"

demo: controlplane system-deps realnode dataplane
	$(PY) -m devtools.demo

bench: controlplane system-deps
	$(PY) -m bench.run

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy webhook helper

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache build dist *.egg-info
