# edr-preprocessor: the front door. `make help` lists the targets.
#
# Everything a target needs is installed by the target itself: Rust crates by
# cargo, Python tools into project-local virtual environments (.venv*), never
# globally. Deployment targets live in mk/deploy.mk, the local emulator loop
# in mk/local.mk.

.DEFAULT_GOAL := help
SHELL := /bin/bash

include mk/deploy.mk
include mk/local.mk
include mk/hardening.mk
include mk/operate.mk
include mk/bench.mk
include mk/arm64.mk

.PHONY: help test test-tools test-rust test-compat lint lint-rust lint-python fmt events fuzz-toolchain fuzz-smoke fuzz

# cargo-fuzz, pinned and prebuilt (requirements/fuzz.txt), installed into the
# project (.cache/tools), run with a nightly toolchain (its sanitizer flags
# are nightly-only), which `fuzz-toolchain` adds through rustup if missing.
FUZZ_TOOLCHAIN ?= nightly
# awslabs' kinesis-aggregation libraries, pinned: Python's in a virtual
# environment of its own (requirements/compat.txt), Node.js's from
# tests/compat/package-lock.json into .cache/compat-node (npm ci, no install
# scripts: none of these packages needs one). Defined before the rules that
# name them: make expands a prerequisite where it reads it.
COMPAT_VENV := .venv-compat
COMPAT_NODE := .cache/compat-node
FUZZ_TOOLS := .cache/tools
CARGO_FUZZ := $(FUZZ_TOOLS)/bin/cargo-fuzz
FUZZ_SECONDS ?= 3600
FUZZ_ARGS := -max_len=65536 -timeout=10 -rss_limit_mb=2048

# The group of each documented target in `make help`; a target not named
# here is listed under "other".
HELP_GROUPS := run:demo,demo-package,emulator,deploy-local,local-package,watch,invoke,events \
	test:test,test-rust,test-compat,test-e2e,e2e-package,test-arm64,arm64-package,arm64-toolchain,test-template,lint,lint-rust,lint-python,fmt,fuzz-toolchain,fuzz-smoke,fuzz,soak \
	deploy:tools,build,validate,sam-build,deploy,clean,distclean,local-venvs,local-clean \
	operate:capacity \
	benchmark:bench,bench-build,bench-transform,bench-publisher,bench-coldstart,bench-report,bench-profiles,bench-venv
export HELP_GROUPS

## help: list the targets, one line each, grouped (run, test, deploy, operate, benchmark)
help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | python3 -c 'import os, sys; \
	groups = {t: g for g, ts in (e.split(":") for e in os.environ["HELP_GROUPS"].split()) for t in ts.split(",")}; \
	lines = [l[3:].rstrip() for l in sys.stdin]; \
	order = ["run", "test", "deploy", "operate", "benchmark", "other"]; \
	[print(f"{g}:\n" + "\n".join("  " + l for l in lines if groups.get(l.split(":")[0], "other") == g)) \
	 for g in order if any(groups.get(l.split(":")[0], "other") == g for l in lines)]'

## test: everything CI runs: lint, Rust tests, a one-minute fuzz run, template checks, end-to-end tests, the arm64 function under qemu
# Two lanes side by side, each step starting as soon as what it needs is
# there (the ci-* targets below). One is the one release build of the run,
# the arm64 function that ships (as `sam build` builds it), then its tests
# under qemu-user and the template checks (whose `sam build` then compiles
# nothing). Beside it, at a lower priority (nice), rustfmt, clippy and
# rustdoc, the Rust tests' build, then the tests, the compatibility tests
# and the fuzz targets' build and runs; from the tests' build on, beside
# them, the end-to-end tests on the dev build of the function it made (not
# niced: they wait on deadlines). Two cores run two builds no faster than
# one; the lower lane uses what the release build leaves (a core through its
# last step, fat LTO in one codegen unit). docs/testing.md says why this
# order; docs/benchmarks.md ("The front door") what each step costs.
test:
	$(MAKE) --no-print-directory -j6 ci

# Every tool `make test` needs (`make -j5 test-tools` installs them side by
# side); `make test` installs each as its first step needs it.
test-tools: $(VENV)/.installed $(LAMBDA_VENV)/.installed $(LOCAL_AWS_VENV)/.installed \
	$(LOCAL_EMULATOR_VENV)/.installed $(CARGO_FUZZ) $(COMPAT_VENV)/.installed $(COMPAT_NODE)/.installed \
	fuzz-toolchain arm64-toolchain

# The lanes of `make test`. Each step is a make of its own outside the job
# pool (its MAKEFLAGS without -j and the jobserver, command-line variables
# kept): cargo runs its own jobs. The release build's log goes to a file,
# printed when it ends, so that the other lane's output stays readable; what
# its toolchain step installs is said before.
CI_LOG := .cache/ci
CI_FLAGS = $(filter-out -j% --jobserver-auth=% --jobserver-fds=%,$(MAKEFLAGS))
CI_MAKE = MAKEFLAGS='$(CI_FLAGS)' $(MAKE) --no-print-directory
CI_LOW = MAKEFLAGS='$(CI_FLAGS)' nice -n 10 $(MAKE) --no-print-directory
.PHONY: ci ci-build ci-arm64 ci-lint-rust ci-test-build ci-test-rust ci-compat ci-fuzz ci-lint-python ci-e2e \
	ci-template
ci: ci-build ci-arm64 ci-lint-rust ci-test-build ci-test-rust ci-compat ci-fuzz ci-lint-python ci-e2e ci-template
ci-build: $(LAMBDA_VENV)/.installed
	@mkdir -p $(CI_LOG)
	@scripts/arm64-toolchain.sh build > /dev/null
	@echo "ci: the arm64 release build (make arm64-package), log in $(CI_LOG)/build.log"
	@$(CI_MAKE) arm64-package > $(CI_LOG)/build.log 2>&1 \
		&& { tail -n 3 $(CI_LOG)/build.log; echo "ci: the arm64 release build is done"; } \
		|| { cat $(CI_LOG)/build.log; echo "ci: the arm64 release build failed"; exit 1; }
ci-arm64: ci-build $(LOCAL_AWS_VENV)/.installed $(LOCAL_EMULATOR_VENV)/.installed
	$(CI_MAKE) -o arm64-package test-arm64
ci-lint-rust:
	$(CI_LOW) lint-rust
ci-test-build: ci-lint-rust
	$(CI_LOW) e2e-package
ci-test-rust: ci-test-build
	$(CI_LOW) test-rust
ci-compat: ci-test-rust $(COMPAT_VENV)/.installed $(COMPAT_NODE)/.installed
	$(CI_LOW) test-compat
ci-fuzz: ci-test-rust $(CARGO_FUZZ)
	$(CI_LOW) fuzz-smoke
ci-lint-python: $(LOCAL_AWS_VENV)/.installed
	$(CI_MAKE) lint-python
ci-e2e: ci-test-build $(LOCAL_AWS_VENV)/.installed $(LOCAL_EMULATOR_VENV)/.installed $(LAMBDA_VENV)/.installed
	$(CI_MAKE) -o e2e-package test-e2e
ci-template: ci-arm64 $(VENV)/.installed
	$(CI_MAKE) test-template ARCH=arm64

## test-rust: the Rust tests (unit, handler scenarios, property test, SDK adapters, sample events)
test-rust:
	cargo test --locked

# awslabs' kinesis-aggregation libraries (COMPAT_VENV, COMPAT_NODE: defined
# at the top, before the prerequisites that name them).

$(COMPAT_VENV)/.installed: requirements/compat.txt
	rm -rf $(COMPAT_VENV)
	$(PYTHON) -m venv $(COMPAT_VENV)
	$(COMPAT_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r $<
	touch $@

$(COMPAT_NODE)/.installed: tests/compat/package.json tests/compat/package-lock.json
	rm -rf $(COMPAT_NODE)
	mkdir -p $(COMPAT_NODE)
	cp $^ $(COMPAT_NODE)/
	cd $(COMPAT_NODE) && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
	touch $@

## test-compat: the aggregated record format against awslabs' Python and Node.js libraries (part of make test)
test-compat: $(COMPAT_VENV)/.installed $(COMPAT_NODE)/.installed
	$(COMPAT_VENV)/bin/python -m pytest -q -p no:cacheprovider tests/compat

## lint: rustfmt, clippy and rustdoc (warnings are errors), the function and its benchmarks; ruff (lint-python)
lint: lint-python lint-rust

## lint-rust: rustfmt, clippy and rustdoc (warnings are errors), the function and its benchmarks
# Both reuse the first clippy's check of the dependencies: the benchmarks
# crate checked into target/ (its own builds stay in benches/target), where
# the dependencies it shares are already checked; rustdoc with --examples (the
# one example is tests/compat's), which resolves features with the dev-dependencies', as
# clippy's --all-targets does, so the SDK crates are not checked a second time
# with other features.
lint-rust:
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo fmt --manifest-path benches/Cargo.toml --check
	cargo clippy --locked --manifest-path benches/Cargo.toml --target-dir $(or $(CARGO_TARGET_DIR),target) \
		--all-targets -- -D warnings
	RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps --lib --bins --examples

## lint-python: ruff check and ruff format --check over the Python (settings: pyproject.toml)
lint-python: $(LOCAL_AWS_VENV)/.installed
	$(LOCAL_AWS_VENV)/bin/ruff check
	$(LOCAL_AWS_VENV)/bin/ruff format --check

## fmt: format the Rust code
fmt:
	cargo fmt
	cargo fmt --manifest-path benches/Cargo.toml

## events: regenerate the sample SQS events in events/
events:
	$(EDR_TOOLS) python3 -m edr_tools.sample_events

$(CARGO_FUZZ): requirements/fuzz.txt
	$(PYTHON) -m pip install --disable-pip-version-check --root-user-action=ignore --quiet --upgrade \
		--target $(FUZZ_TOOLS) -r $<
	touch $@

## fuzz-toolchain: rustup's nightly toolchain for cargo fuzz (FUZZ_TOOLCHAIN), installed with --profile minimal if missing
fuzz-toolchain:
	@cargo +$(FUZZ_TOOLCHAIN) --version > /dev/null 2>&1 || { \
		echo "fuzz-toolchain: installing a minimal $(FUZZ_TOOLCHAIN) Rust toolchain for cargo fuzz (rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal)"; \
		rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal \
		|| { echo "fuzz-toolchain: cargo fuzz needs a $(FUZZ_TOOLCHAIN) Rust toolchain and rustup could not install it: run \`rustup toolchain install $(FUZZ_TOOLCHAIN) --profile minimal\` where rustup can download" >&2; exit 1; }; }

## fuzz-smoke: fuzz the body -> records path for 60 s from the seeds in events/, the deaggregator for 20 s (part of make test)
fuzz-smoke: $(CARGO_FUZZ) fuzz-toolchain
	python3 fuzz/seeds.py
	PATH="$(abspath $(FUZZ_TOOLS))/bin:$$PATH" cargo +$(FUZZ_TOOLCHAIN) fuzz run body fuzz/corpus/body -- $(FUZZ_ARGS) -max_total_time=60
	PATH="$(abspath $(FUZZ_TOOLS))/bin:$$PATH" cargo +$(FUZZ_TOOLCHAIN) fuzz run deaggregate fuzz/corpus/deaggregate -- $(FUZZ_ARGS) -max_total_time=20

## fuzz: the long fuzz run (FUZZ_SECONDS, default 3600; bodies up to the 1 MiB SQS limit; FUZZ_TARGET=deaggregate for the deaggregator)
FUZZ_TARGET ?= body
fuzz: $(CARGO_FUZZ) fuzz-toolchain
	python3 fuzz/seeds.py
	PATH="$(abspath $(FUZZ_TOOLS))/bin:$$PATH" cargo +$(FUZZ_TOOLCHAIN) fuzz run $(FUZZ_TARGET) fuzz/corpus/$(FUZZ_TARGET) -- -max_len=1048576 -timeout=30 -rss_limit_mb=4096 -max_total_time=$(FUZZ_SECONDS)
