# mk/bench.mk: `make bench`, the benchmarks, and their parts. docs/benchmarks.md
# explains every figure, the goals and the last results.
#
# Included by the top-level Makefile, and self-contained: `make -f mk/bench.mk
# bench` works too. Benchmarks only: nothing here is part of `make test`, and
# no test depends on the speed of the machine. The Python reference runs from
# mk/local.mk's .venv-aws (requirements/awscli.txt: the same boto3 and botocore,
# and awslambdaric), installed by the first target that needs it; the Python
# that drives the benchmarks is python/edr_tools/bench. Results (JSON,
# criterion's files, logs, report.md) go to $(BENCH_OUT).
#
#   make bench                    everything, then one table (docs/benchmarks.md#time)
#   make bench-transform          criterion: decode + validate + encode, allocations
#   make bench-publisher          the publisher against a simulated Kinesis (paused clock)
#   make bench-coldstart          release binary and Python reference under a Runtime API stub
#   make bench-report             the table again, from the last results
#   make bench-profiles           release-profile and AWS_LC_SYS_NO_JITTER_ENTROPY variants,
#                                 before/after (3 more release builds: slow, not part of bench)

# Standalone (make -f mk/bench.mk): bring in mk/local.mk's .venv-aws rule and EDR_TOOLS.
ifeq ($(filter %local.mk,$(MAKEFILE_LIST)),)
include $(dir $(lastword $(MAKEFILE_LIST)))local.mk
.DEFAULT_GOAL := bench
endif

BENCH_PYTHON ?= python3
BENCH_VENV := $(LOCAL_AWS_VENV)
BENCH_OUT ?= target/bench
# The binary `make bench` measures: the host release build of the function.
BENCH_BIN := target/release/bootstrap
# Repetitions of the cold-start part (fresh processes).
BENCH_INIT_RUNS ?= 20
BENCH_PYTHON_INIT_RUNS ?= 5
BENCH_BATCH_RUNS ?= 3
# Kinesis round trips added by the stub, in ms (each a separate set of rows).
BENCH_LATENCIES ?= 0 20
# Extra arguments for criterion (e.g. BENCH_CRITERION_ARGS='--quick').
BENCH_CRITERION_ARGS ?=
# The Rust benchmarks are a crate of their own, without the AWS SDK
# (benches/Cargo.toml); their build goes to benches/target.
BENCH_CARGO_ARGS := --locked --manifest-path benches/Cargo.toml
BENCH_ENV := BENCH_OUT=$(abspath $(BENCH_OUT)) CRITERION_HOME=$(abspath $(BENCH_OUT))/criterion
BENCH_PROFILES_DIR := target/bench-profiles
# Release-profile variants of `make bench-profiles`: overrides of Cargo.toml's
# [profile.release] on the command line, and the build environment. baseline:
# cargo's default release profile (what Cargo.toml had before tuning); tuned:
# Cargo.toml's [profile.release]; tuned-nojitter: the same built with
# AWS_LC_SYS_NO_JITTER_ENTROPY=1.
BENCH_VARIANT_FLAGS_baseline := --config profile.release.lto=false --config profile.release.codegen-units=16 \
	--config 'profile.release.strip="none"' --config profile.release.opt-level=3
BENCH_VARIANT_ENV_baseline :=
BENCH_VARIANT_FLAGS_tuned :=
BENCH_VARIANT_ENV_tuned :=
BENCH_VARIANT_FLAGS_tuned-nojitter :=
BENCH_VARIANT_ENV_tuned-nojitter := AWS_LC_SYS_NO_JITTER_ENTROPY=1
BENCH_VARIANTS := baseline tuned tuned-nojitter

.PHONY: bench bench-build bench-transform bench-publisher bench-coldstart bench-report \
	bench-profiles bench-venv

# The parts run one after the other even under `make -j`: they measure time.
BENCH_MAKE = $(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST))

## bench: every benchmark (transform, publisher vs simulated Kinesis, cold start, vs Python), then one table
bench:
	@$(BENCH_MAKE) bench-build
	@$(BENCH_MAKE) bench-transform
	@$(BENCH_MAKE) bench-publisher
	@$(BENCH_MAKE) bench-coldstart
	@$(BENCH_MAKE) bench-report

## bench-build: the release binary (target/release/bootstrap) and the benchmark binaries
bench-build:
	cargo build --release --locked --bin bootstrap
	cargo bench $(BENCH_CARGO_ARGS) --no-run --bench transform --bench publisher

## bench-transform: criterion, decode + validate + encode per event and per submission, allocations
bench-transform:
	@mkdir -p $(BENCH_OUT)
	$(BENCH_ENV) cargo bench $(BENCH_CARGO_ARGS) --bench transform -- $(BENCH_CRITERION_ARGS)

## bench-publisher: PutRecords calls and time against a simulated Kinesis (limits, latency, paused clock)
bench-publisher:
	@mkdir -p $(BENCH_OUT)
	$(BENCH_ENV) cargo bench $(BENCH_CARGO_ARGS) --bench publisher

## bench-coldstart: init, batch time and peak RSS under a Runtime API stub, Rust and the Python reference
bench-coldstart: $(BENCH_VENV)/.installed
	cargo build --release --locked --bin bootstrap
	@mkdir -p $(BENCH_OUT)
	$(EDR_TOOLS) $(BENCH_PYTHON) -m edr_tools.bench.coldstart --rust release=$(BENCH_BIN) --python $(BENCH_VENV)/bin/python \
		--init-runs $(BENCH_INIT_RUNS) --python-init-runs $(BENCH_PYTHON_INIT_RUNS) \
		--batch-runs $(BENCH_BATCH_RUNS) $(foreach l,$(BENCH_LATENCIES),--kinesis-latency-ms $(l)) \
		--out $(BENCH_OUT)/coldstart.json --log $(BENCH_OUT)/coldstart.log

## bench-report: print the table of the last `make bench` again (also in target/bench/report.md)
bench-report:
	@$(EDR_TOOLS) $(BENCH_PYTHON) -m edr_tools.bench.report --dir $(BENCH_OUT)

## bench-profiles: release binary before/after profile tuning and AWS_LC_SYS_NO_JITTER_ENTROPY (slow)
bench-profiles: $(BENCH_VENV)/.installed
	@mkdir -p $(BENCH_OUT) $(BENCH_PROFILES_DIR)/bin
	set -e; for v in $(BENCH_VARIANTS); do $(BENCH_MAKE) bench-variant-$$v; done
	$(EDR_TOOLS) $(BENCH_PYTHON) -m edr_tools.bench.coldstart --batch-runs $(BENCH_BATCH_RUNS) \
		--init-runs $(BENCH_INIT_RUNS) --orderings strict \
		$(foreach v,$(BENCH_VARIANTS),--rust $(v)=$(BENCH_PROFILES_DIR)/bin/$(v)) \
		--out $(BENCH_OUT)/profiles.json --log $(BENCH_OUT)/profiles.log
	@$(EDR_TOOLS) $(BENCH_PYTHON) -m edr_tools.bench.report --dir $(BENCH_OUT) --profiles

# One variant: its own target directory, so variants never rebuild each other
# or the shared target/release.
bench-variant-%:
	$(BENCH_VARIANT_ENV_$*) CARGO_TARGET_DIR=$(BENCH_PROFILES_DIR)/$* \
		cargo build --release --locked --bin bootstrap $(BENCH_VARIANT_FLAGS_$*)
	cp $(BENCH_PROFILES_DIR)/$*/release/bootstrap $(BENCH_PROFILES_DIR)/bin/$*

## bench-venv: install the Python reference's environment (.venv-aws, mk/local.mk's rule)
bench-venv: $(BENCH_VENV)/.installed
