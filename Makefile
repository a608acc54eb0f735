# wattlab: two commands do all set-up on a fresh machine: `make demo` and `make test`.
PY     ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test lint sysdeps agent-pythons bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(STAMP)

# Opens the console on the built-in simulated lab (local machine + simulated Jetson AGX Orin + H100).
demo: install
	$(BIN)/wattlab --sample

# System packages the tests need: a real OpenSSH sshd for the SSH integration tests, iproute2 for
# network-namespace fault tests. Installed only where missing (CI runs as root on a clean machine).
sysdeps:
	@if [ ! -x /usr/sbin/sshd ] || ! command -v ssh-keygen >/dev/null || ! command -v ip >/dev/null; then \
	  echo "installing openssh-server, openssh-client, iproute2"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server openssh-client iproute2 >/dev/null; \
	fi

lint: install
	$(BIN)/ruff check .
	$(BIN)/vermin --no-tips --violations -t=3.6- --eval-annotations --backport typing agents/

# The agent's own tests under every CPython found (3.6 -> 3.13); prints which ran.
agent-pythons: install
	$(BIN)/python tests/run_agent_pythons.py

test: install sysdeps lint agent-pythons
	$(BIN)/python -m pytest -q -ra

bench: install
	@for f in bench/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
