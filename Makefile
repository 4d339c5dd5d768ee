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

.PHONY: help test test-rust lint lint-python fmt events fuzz-smoke fuzz

# cargo-fuzz, pinned, installed into the project (.cache/tools), run with nightly.
FUZZ_TOOLS := .cache/tools
CARGO_FUZZ := $(FUZZ_TOOLS)/bin/cargo-fuzz
CARGO_FUZZ_VERSION := 0.13.2
FUZZ_SECONDS ?= 3600
FUZZ_ARGS := -max_len=65536 -timeout=10 -rss_limit_mb=2048

## help: list the targets
help:
	@grep -hE '^## ' $(MAKEFILE_LIST) | sed 's/^## /  /'

## test: everything CI runs: lint, Rust tests, a one-minute fuzz run, template checks, end-to-end tests
test: lint test-rust fuzz-smoke test-template test-e2e

## test-rust: the Rust tests (unit, handler scenarios, property test, SDK adapters, sample events)
test-rust:
	cargo test --locked

## lint: rustfmt, clippy and rustdoc (warnings are errors), the function and its benchmarks; ruff (lint-python)
lint: lint-python
	cargo fmt --check
	cargo clippy --locked --all-targets -- -D warnings
	cargo fmt --manifest-path benches/Cargo.toml --check
	cargo clippy --locked --manifest-path benches/Cargo.toml --all-targets -- -D warnings
	RUSTDOCFLAGS=-Dwarnings cargo doc --locked --no-deps

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

$(CARGO_FUZZ):
	cargo install --locked --quiet cargo-fuzz@$(CARGO_FUZZ_VERSION) --root $(FUZZ_TOOLS)

## fuzz-smoke: fuzz the body -> records path for 60 s from the seeds in events/ (part of make test)
fuzz-smoke: $(CARGO_FUZZ)
	python3 fuzz/seeds.py
	PATH="$(abspath $(FUZZ_TOOLS))/bin:$$PATH" cargo +nightly fuzz run body fuzz/corpus/body -- $(FUZZ_ARGS) -max_total_time=60

## fuzz: the long fuzz run (FUZZ_SECONDS, default 3600; bodies up to the 1 MiB SQS limit)
fuzz: $(CARGO_FUZZ)
	python3 fuzz/seeds.py
	PATH="$(abspath $(FUZZ_TOOLS))/bin:$$PATH" cargo +nightly fuzz run body fuzz/corpus/body -- -max_len=1048576 -timeout=30 -rss_limit_mb=4096 -max_total_time=$(FUZZ_SECONDS)
