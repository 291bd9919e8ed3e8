# pyctr: two commands set everything up on a fresh Debian 12 machine:
#   make demo   (the seed walkthrough)    make test   (the whole suite)
# Both run `make install` first; it is idempotent.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := /usr/local/bin

# Debian packages: what pyctr needs at run time and to build its Python
# dependencies, then what the tests use as independent referees and fixtures.
# Other projects' test tables (tests/unit/test_peer_cases.py) need nothing installed: they are read
# from ../shared/peer-cases beside the checkout, and the test fails if that folder is missing.
DEB_RUNTIME := libcap-dev libseccomp2 nftables iptables iproute2 zstd curl ca-certificates tini procps gcc
DEB_TEST := docker-registry umoci skopeo busybox-static containerd podman debootstrap debian-archive-keyring apache2-utils procps util-linux docker-compose
DEB_ALL := $(DEB_RUNTIME) $(DEB_TEST)

.PHONY: install shim deb venv test unit integration demo bench bench-peers lint clean

install: deb venv shim
	@# bytecode ahead of time: start-up stays fast even where PYTHONDONTWRITEBYTECODE is set
	@$(PY) -m compileall -q pyctr >/dev/null
	@# the command itself: no `site` until it knows the command runs in-process (pyctr/client.py)
	@$(PY) scripts/write_launcher.py $(VENV)/bin/pyctr
	@ln -sf "$(CURDIR)/$(VENV)/bin/pyctr" $(BIN)/pyctr
	@# the OCI runtime (runc's command line) for containerd, podman and CRI: pyctr/oci/
	@$(PY) scripts/write_launcher.py $(VENV)/bin/pyctr-runtime
	@ln -sf "$(CURDIR)/$(VENV)/bin/pyctr-runtime" $(BIN)/pyctr-runtime
	@echo "pyctr installed: $$(command -v pyctr) $$(command -v pyctr-runtime)"

# The exec shim (pyctr/runtime/shim/exec_shim.c): a static ELF with no libc and no loader, the binary every
# container command is exec'd through (CVE-2019-5736; docs/ARCHITECTURE.md). Built here, never committed.
SHIM := pyctr/runtime/shim/exec-shim
SHIM_CFLAGS := -static -nostdlib -ffreestanding -fno-builtin -fno-stack-protector -fno-asynchronous-unwind-tables \
	-fno-pie -no-pie -Os -Wall -Wextra -Werror -Wl,--build-id=none -s

shim: $(SHIM)

$(SHIM): pyctr/runtime/shim/exec_shim.c pyctr/runtime/shim/syscall.h
	gcc $(SHIM_CFLAGS) -o $@.tmp $< && mv -f $@.tmp $@

deb:
	@missing=$$(for p in $(DEB_ALL); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:" $$missing; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
	@# Debian starts a registry on :5000 at install; pyctr's tests run their own.
	@if command -v systemctl >/dev/null && systemctl is-active -q docker-registry 2>/dev/null; then systemctl disable --now docker-registry >/dev/null 2>&1 || true; fi
	@pkill -x docker-registry -f '/etc/docker/registry/config.yml' 2>/dev/null || true

$(VENV)/.stamp: pyproject.toml
	@[ -x $(PY) ] || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	@# compat mode: a plain path entry instead of an import-hook finder (~35 ms off every start-up)
	$(PY) -m pip install -q -e '.[test]' --config-settings editable_mode=compat
	@touch $@

venv: $(VENV)/.stamp

test: install
	$(VENV)/bin/ruff check pyctr tests bench scripts
	$(VENV)/bin/pytest -q tests

unit: venv
	$(VENV)/bin/pytest -q tests/unit

integration: install
	$(VENV)/bin/pytest -q tests/integration

demo: install
	$(PY) scripts/demo.py

bench: install
	$(PY) bench/run.py

# Docker side by side. bench/run.py starts dockerd itself, per group of benchmarks, only while it holds the
# integration-test lock, with its state in a temporary directory, and restores the host's network state
# (docker0, iptables/nft, sysctls, mounts, containerd) when it stops it (bench/dockerd.py).
bench-peers: install
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io wrk
	$(PY) bench/run.py --peers

lint: venv
	$(VENV)/bin/ruff check pyctr tests bench scripts

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
