# mk/arm64.mk: the arm64 function, what `sam build` and `sam deploy` ship by
# default, built as sam build builds it and run here under qemu-user.
#
# Included by the top-level Makefile after mk/deploy.mk and mk/local.mk (it uses
# their cargo-lambda, PATH, toolchain and virtual environments).
# scripts/arm64-toolchain.sh finds the toolchain (rustup's aarch64 target, or
# Debian's rustc with its aarch64 standard library) and qemu-aarch64, and
# installs what is missing where it can; docs/testing.md says what
# `make test-arm64` proves.

ARM64_DIR := $(LOCAL_TARGET)/arm64
ARM64_BIN := $(ARM64_DIR)/bootstrap
# pytest arguments for `make test-arm64` (e.g. ARM64_ARGS='-k panic -x').
ARM64_ARGS ?=

.PHONY: arm64-toolchain arm64-package test-arm64

## arm64-toolchain: the compiler for aarch64 and qemu-aarch64: rustup's or Debian's, installed with apt-get if missing (as root)
arm64-toolchain:
	@scripts/arm64-toolchain.sh build > /dev/null
	@scripts/arm64-toolchain.sh run > /dev/null

## arm64-package: cargo lambda build --release --arm64 --bin bootstrap, as sam build runs it -> target/arm64/bootstrap
# sam build's command for provided.al2023 and arm64, with the same
# cargo-lambda, PATH and toolchain as `make sam-build` and `make
# test-template`, so that each of them after this one compiles nothing. Copied
# out of target/lambda/bootstrap, where the x86_64 local-package goes too.
arm64-package: $(LAMBDA_VENV)/.installed
	$(ARCH_TOOLCHAIN_arm64) $(LAMBDA_TOOLS) env $$toolchain cargo lambda build --release --arm64 --bin bootstrap
	$(call deploy_check_elf,$(LOCAL_TARGET)/lambda/bootstrap/bootstrap,arm64)
	mkdir -p $(ARM64_DIR) && cp $(LOCAL_TARGET)/lambda/bootstrap/bootstrap $(ARM64_BIN)

## test-arm64: the arm64 release build under qemu-user: Runtime API stub, MiniStack's Kinesis and SQS (tests/arm64)
test-arm64: local-venvs arm64-package
	runner="$$(scripts/arm64-toolchain.sh run)" && ARM64_BOOTSTRAP=$(abspath $(ARM64_BIN)) \
		ARM64_RUNNER="$$runner" LOCAL_REGION=$(LOCAL_REGION) \
		$(LOCAL_AWS_VENV)/bin/python -m pytest tests/arm64 -p no:cacheprovider $(ARM64_ARGS)
