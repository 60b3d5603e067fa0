# The two commands a new user runs on a fresh machine with Docker: `make demo` and `make test`.
# Each installs what it needs first (its own virtual environment .venv with the Python packages,
# debootstrap where no registry serves postgres images, the collection itself), so nothing else has
# to be set up by hand, and a system Python that is externally managed (PEP 668) is never pip-installed into.

SHELL := /bin/bash
SYSTEM_PYTHON ?= python3
VENV ?= .venv
VENV_BIN := $(abspath $(VENV))/bin
PYTHON := $(VENV_BIN)/python
# Every tool the targets run (ansible-playbook, ansible-galaxy, ansible-test, ansible-lint, molecule, pytest,
# ruff) is the virtual environment's, and so is the Python the tests hand to Ansible for the modules.
export PATH := $(VENV_BIN):$(PATH)
export VIRTUAL_ENV := $(abspath $(VENV))
VERSION := $(shell sed -n 's/^version: *//p' galaxy.yml)
TARBALL := build/baseful-branching-$(VERSION).tar.gz
COLLECTIONS_PATH ?= $(HOME)/.ansible/collections
export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS_PATH)
PYTEST := $(PYTHON) -m pytest
# The Docker suites run in parallel (pytest-xdist): one worker more than there are cores, since tests also
# wait on servers and containers (on 2 cores, 3 workers ran both suites in 15.1 min, 4 in 15.5, 1 in 38.7).
# tests/integration/conftest.py keeps the workers' ports, directories and the daemon's restart apart.
TEST_JOBS ?= $(shell echo $$(( $$(nproc) + 1 )))
XDIST = -n $(TEST_JOBS) --dist worksteal
# The images `make images` chose, for the suites.
IMAGES = BASEFUL_IMAGE_17=$$(cat build/image-17) BASEFUL_IMAGE_15=$$(cat build/image-15) \
	BASEFUL_IMAGE_18=$$(cat build/image-18) BASEFUL_IMAGE_17_HARDENED=$$(cat build/image-17-hardened) \
	BASEFUL_ENDPOINT_IMAGE=$$(cat build/image-pgbouncer)

.PHONY: demo test deps images install unit integration reliability suites lint sanity molecule docs bench clean

# Debian and Ubuntu ship the venv module apart (python3-venv); it is installed where it is missing.
$(PYTHON):
	@$(SYSTEM_PYTHON) -m venv $(VENV) 2>/dev/null || { rm -rf $(VENV); apt-get update -qq \
		&& apt-get install -y -qq python3-venv >/dev/null && $(SYSTEM_PYTHON) -m venv $(VENV); }
	@$(PYTHON) -m pip install -q --upgrade pip

deps: $(PYTHON)
	@$(PYTHON) -c "import ansible, docker, psycopg, pytest, xdist, hypothesis" 2>/dev/null \
		&& [ -x $(VENV_BIN)/ansible-lint ] && [ -x $(VENV_BIN)/molecule ] && [ -x $(VENV_BIN)/shellcheck ] \
		&& $(PYTHON) -c "import galaxy_importer" 2>/dev/null && [ -x $(VENV_BIN)/ansible-builder ] \
		|| $(PYTHON) -m pip install -q -r requirements-test.txt
	@# debootstrap builds the test images; xfsprogs and btrfs-progs make the reflink filesystems of the
	@# snapshot tests and the benchmark; cron provides crontab for the expiry role.
	@command -v debootstrap >/dev/null && command -v mkfs.xfs >/dev/null && command -v mkfs.btrfs >/dev/null \
		&& command -v crontab >/dev/null \
		|| { apt-get update -qq && apt-get install -y -qq debootstrap xfsprogs btrfs-progs cron >/dev/null; }
	@# openssh-server and sudo: the two-host inventory test reaches this machine over SSH and becomes root with
	@# sudo. Installed without starting the ssh service (a policy-rc.d for the install only): the test runs its own.
	@[ -x /usr/sbin/sshd ] && command -v sudo >/dev/null || { made=; [ -e /usr/sbin/policy-rc.d ] \
		|| { printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made=1; }; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq openssh-server sudo >/dev/null; \
		status=$$?; [ -z "$$made" ] || rm -f /usr/sbin/policy-rc.d; exit $$status; }

images: deps
	@for spec in 17 15 18 "17 hardened" pgbouncer; do \
		name=$$(echo $$spec | tr ' ' -); \
		tests/images/ensure.sh $$spec > build/image-$$name 2>build/image-$$name.log \
			|| { cat build/image-$$name.log; exit 1; }; \
	done
	@echo "images: $$(cat build/image-17) $$(cat build/image-15) $$(cat build/image-18) $$(cat build/image-17-hardened)" \
		"$$(cat build/image-pgbouncer)"

build:
	@mkdir -p build

images deps install: | build

install: deps
	@ansible-galaxy collection build --force --output-path build >/dev/null
	@ansible-galaxy collection install --no-deps --force -p $(COLLECTIONS_PATH) $(TARBALL) >/dev/null
	@echo "installed baseful.branching $(VERSION) into $(COLLECTIONS_PATH)"

# The demo's database records its image by name, so a stand-in is named by its stable tag, which
# outlives a rebuild of the stand-in.
demo: deps install
	@image=$$(tests/images/ensure.sh 18 2>build/image-18.log) || { cat build/image-18.log; exit 1; }; \
	case "$$image" in baseful/*) image=baseful/postgres:18-debian ;; esac; \
	endpoint=$$(tests/images/ensure.sh pgbouncer 2>build/image-pgbouncer.log) || { cat build/image-pgbouncer.log; exit 1; }; \
	case "$$endpoint" in baseful/*) endpoint=baseful/pgbouncer:trixie ;; esac; \
	ansible-playbook demo/demo.yml -e baseful_demo_image=$$image -e baseful_demo_endpoint_image=$$endpoint

unit: deps
	$(PYTEST) -q tests/unit

sanity: deps
	tests/sanity/run.sh

lint: deps
	ansible-lint --profile production
	ruff check plugins tests
	antsibull-changelog lint
	tests/galaxy/importer.sh
	tests/galaxy/ee.sh

molecule: images install
	molecule reset >/dev/null  # its state under ~/.ansible/tmp must not make it skip prepare
	BASEFUL_IMAGE_17=$$(cat build/image-17) BASEFUL_ENDPOINT_IMAGE=$$(cat build/image-pgbouncer) molecule test

integration: images install
	$(IMAGES) $(PYTEST) -q -x $(XDIST) --durations=8 tests/integration

# Faults injected for real (SIGKILL at every step, a killed postmaster, a restarted Docker daemon, a
# full disk), 5 rounds of concurrent runs, the generated bad-input matrix and the exposure checks;
# tests/reliability/README.md holds its table.
reliability: images install
	$(IMAGES) $(PYTEST) -q -p no:cacheprovider $(XDIST) --durations=8 tests/reliability

# Both Docker suites in one pool of workers, so that neither waits for the other's last test.
suites: images install
	$(IMAGES) $(PYTEST) -q -p no:cacheprovider $(XDIST) --durations=12 tests/integration tests/reliability

test: unit lint sanity suites molecule docs

# The documentation site (antsibull-docs and Sphinx): build/docs/build/html.
docs: install
	@[ -x $(VENV_BIN)/antsibull-docs ] && $(PYTHON) -c "import sphinx, sphinx_ansible_theme" 2>/dev/null \
		|| $(PYTHON) -m pip install -q -r docs/requirements.txt
	docs/build.sh

bench: images install
	@$(PYTHON) -c "import matplotlib" 2>/dev/null || $(PYTHON) -m pip install -q matplotlib
	BASEFUL_ENDPOINT_IMAGE=$$(cat build/image-pgbouncer) $(PYTHON) benchmarks/bench.py --image $$(cat build/image-17) \
		$(if $(BENCH_SIZES),--sizes $(BENCH_SIZES)) $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

clean:
	rm -rf build $(VENV)
