# mk/local.mk: the function on a local AWS emulator (MiniStack), no Docker, no account.
#
# Included by the top-level Makefile, and self-contained: `make -f mk/local.mk demo`
# works too. Python tools live in project-local virtual environments, each
# installed from its pinned requirements file by the first target that needs it:
#   .venv-emulator  requirements/emulator.txt  MiniStack (it pins botocore exactly)
#   .venv-aws       requirements/awscli.txt    AWS CLI, awslocal, boto3, pytest (also
#                                              awslambdaric for mk/bench.mk, ruff for `make lint`)
# The Python they run is the toolbox python/edr_tools, with PYTHONPATH=python
# ($(EDR_TOOLS)); pytest finds it through pyproject.toml.
# cargo-lambda (the build, and the `cargo lambda invoke` tests) comes from
# mk/deploy.mk's .venv-lambda, requirements/cargo-lambda.txt: no SAM, no cfn-lint.
# docs/local.md describes every target.

# Set first, while this file is the last in MAKEFILE_LIST.
EDR_TOOLS := PYTHONPATH=$(abspath $(dir $(lastword $(MAKEFILE_LIST)))../python)
PYTHON ?= python3
VENV ?= .venv
# Standalone (make -f mk/local.mk): bring in the $(VENV) rule from mk/deploy.mk.
ifeq ($(filter %deploy.mk,$(MAKEFILE_LIST)),)
include $(dir $(lastword $(MAKEFILE_LIST)))deploy.mk
endif
LOCAL_EMULATOR_VENV := .venv-emulator
LOCAL_AWS_VENV := .venv-aws
# The function is built exactly as `sam build` builds it for provided.al2023
# (`cargo lambda build --release --bin bootstrap`, the same cargo-lambda, for
# this machine's architecture), so after one of them the other is a no-op
# (`make sam-build ARCH=x86_64` here). Then zipped as `bootstrap`: the same
# package a LocalStack user deploys. `make test` builds arm64 instead, the
# architecture deployed by default (mk/arm64.mk).
LOCAL_ARCH := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)
LOCAL_TRIPLE := $(if $(filter arm64,$(LOCAL_ARCH)),aarch64,x86_64)-unknown-linux-gnu
# Cargo's output folder (CARGO_TARGET_DIR when set, as cargo itself does).
LOCAL_TARGET := $(or $(CARGO_TARGET_DIR),target)
LOCAL_ZIP := $(LOCAL_TARGET)/lambda/bootstrap/bootstrap.zip
LOCAL_BIN := $(LOCAL_TARGET)/lambda/bootstrap/bootstrap
# What `sam build` adds to `cargo lambda build` for each architecture.
SAM_ARCH_FLAG_arm64 := --arm64
SAM_ARCH_FLAG_x86_64 :=
# Event source mapping and queue settings of `make demo` / `make deploy-local`.
BATCH_SIZE ?= 10
VISIBILITY_TIMEOUT ?= 30
FUNCTION_TIMEOUT ?= 10
EMULATOR_PORT ?= 4566
# What `make demo` runs: dev (demo-package, the default) or release (local-package).
DEMO_PROFILE ?= dev
ifeq ($(filter $(DEMO_PROFILE),dev release),)
$(error DEMO_PROFILE must be dev or release, not '$(DEMO_PROFILE)')
endif
DEMO_PACKAGE_dev := demo-package
DEMO_PACKAGE_release := local-package
DEMO_ZIP_dev := $(LOCAL_TARGET)/demo/bootstrap.zip
DEMO_ZIP_release := $(LOCAL_ZIP)
# Sensor fleet of `make demo`.
DEMO_DEVICES ?= 4
DEMO_SUBMISSIONS ?= 12
DEMO_BROKEN ?= 3
# What `make test-e2e` tests: dev (e2e-package, the default: the dev build the
# Rust tests run) or release (local-package, the fat-LTO build `sam build`
# makes for this machine). The release profile changes no behaviour these
# tests look at; what it could break (compiling, linking, starting, serving)
# is checked on the release build that ships (docs/testing.md).
E2E_PROFILE ?= dev
ifeq ($(filter $(E2E_PROFILE),dev release),)
$(error E2E_PROFILE must be dev or release, not '$(E2E_PROFILE)')
endif
E2E_PACKAGE_dev := e2e-package
E2E_PACKAGE_release := local-package
E2E_BIN_dev := $(LOCAL_TARGET)/e2e/bootstrap
E2E_BIN_release := $(LOCAL_BIN)
# Reads cargo's JSON messages; prints the one `bootstrap` executable built.
define E2E_BOOTSTRAP_EXECUTABLE_PY
import json, sys
found = {m["executable"] for m in map(json.loads, sys.stdin)
         if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "bootstrap"
         and "bin" in m["target"]["kind"] and not m["profile"]["test"]}
if len(found) != 1:
    sys.exit(f"cargo test --no-run: expected one bootstrap executable, got {sorted(found)}")
print(*found)
endef
export E2E_BOOTSTRAP_EXECUTABLE_PY
# Extra pytest arguments for `make test-e2e` (e.g. E2E_ARGS='-k failed_entries -x').
E2E_ARGS ?=
# pytest-xdist workers of `make test-e2e`, each with its own MiniStack: the
# tests mostly wait (on the event source mapping's polls, on deadlines), so
# three at a time finish in about a third of the time, on two cores too.
# E2E_WORKERS=0 runs them in this process, one after the other.
E2E_WORKERS ?= 3

# LOCAL_REGION (default eu-west-1) is defined in mk/deploy.mk, which `watch` needs it in too.
LOCAL_ENV := BATCH_SIZE=$(BATCH_SIZE) VISIBILITY_TIMEOUT=$(VISIBILITY_TIMEOUT) \
	FUNCTION_TIMEOUT=$(FUNCTION_TIMEOUT) EMULATOR_PORT=$(EMULATOR_PORT) ARCHITECTURE=$(LOCAL_ARCH) \
	LOCAL_REGION=$(LOCAL_REGION) AWS_REGION=$(LOCAL_REGION) AWS_DEFAULT_REGION=$(LOCAL_REGION)

.PHONY: demo demo-package e2e-package test-e2e emulator deploy-local local-venvs local-package local-clean

## demo: start MiniStack, deploy the function behind an SQS mapping, run a sensor fleet, print the stream
# The environments install while the function compiles (-j): a cold demo waits
# for the longest of them, not for their sum. The function is built in cargo's
# dev profile (demo-package): the demo shows what the function does, which no
# profile changes, and a cold dev build takes a third of the release build's
# time. DEMO_PROFILE=release demos the deployed build instead (local-package).
demo:
	$(MAKE) --no-print-directory -j3 $(LOCAL_EMULATOR_VENV)/.installed $(LOCAL_AWS_VENV)/.installed \
		$(DEMO_PACKAGE_$(DEMO_PROFILE))
	$(LOCAL_ENV) DEMO_DEVICES=$(DEMO_DEVICES) DEMO_SUBMISSIONS=$(DEMO_SUBMISSIONS) \
		DEMO_BROKEN=$(DEMO_BROKEN) $(EDR_TOOLS) $(LOCAL_AWS_VENV)/bin/python -m edr_tools.demo \
		--zip $(DEMO_ZIP_$(DEMO_PROFILE))

## demo-package: cargo build --bin bootstrap (dev profile, this machine) -> target/demo/bootstrap.zip, what make demo runs
demo-package:
	cargo build --locked --bin bootstrap
	mkdir -p $(LOCAL_TARGET)/demo && cp $(LOCAL_TARGET)/debug/bootstrap $(LOCAL_TARGET)/demo/bootstrap
	cd $(LOCAL_TARGET)/demo && rm -f bootstrap.zip && $(PYTHON) -m zipfile -c bootstrap.zip bootstrap

## e2e-package: the function as the Rust tests build it (cargo test --no-run, dev profile) -> target/e2e/bootstrap, what make test-e2e runs
# Not `cargo build --bin bootstrap` (demo-package): with the tests' features
# (the dev-dependencies' tokio and SDK test-util, unused by the binary) the
# dependencies are those `make test-rust` has built, so after it this is a
# no-op, where a build of its own recompiled most of them.
e2e-package:
	set -o pipefail; bin="$$(cargo test --locked --no-run --message-format=json-render-diagnostics \
		| $(PYTHON) -c "$$E2E_BOOTSTRAP_EXECUTABLE_PY")" \
		&& mkdir -p $(LOCAL_TARGET)/e2e && cp "$$bin" $(E2E_BIN_dev)

## test-e2e: end-to-end tests over real HTTP: MiniStack, the real binary (dev build; E2E_PROFILE=release), fault proxy, cargo lambda invoke
test-e2e: local-venvs $(LAMBDA_VENV)/.installed $(E2E_PACKAGE_$(E2E_PROFILE))
	E2E_BOOTSTRAP=$(abspath $(E2E_BIN_$(E2E_PROFILE))) E2E_CARGO_LAMBDA_BIN=$(LAMBDA_VENV_BIN) LOCAL_REGION=$(LOCAL_REGION) \
		$(LOCAL_AWS_VENV)/bin/python -m pytest tests/e2e -p no:cacheprovider -n $(E2E_WORKERS) $(E2E_ARGS)

## emulator: run MiniStack on 127.0.0.1:$(EMULATOR_PORT) in the foreground (Ctrl-C stops it), default region $(LOCAL_REGION)
emulator: $(LOCAL_EMULATOR_VENV)/.installed
	$(EDR_TOOLS) $(LOCAL_EMULATOR_VENV)/bin/python -m edr_tools.emulator run --port $(EMULATOR_PORT) --region $(LOCAL_REGION)

## deploy-local: build, then scripts/deploy-local.sh against AWS_ENDPOINT_URL (default: make emulator's), in $(LOCAL_REGION)
deploy-local: $(LOCAL_AWS_VENV)/.installed local-package
	PATH="$(abspath $(LOCAL_AWS_VENV))/bin:$$PATH" $(LOCAL_ENV) ZIP=$(LOCAL_ZIP) \
		AWS_ENDPOINT_URL=$${AWS_ENDPOINT_URL:-http://127.0.0.1:$(EMULATOR_PORT)} scripts/deploy-local.sh

## local-venvs: install .venv-emulator and .venv-aws
local-venvs: $(LOCAL_EMULATOR_VENV)/.installed $(LOCAL_AWS_VENV)/.installed

$(LOCAL_EMULATOR_VENV)/.installed: requirements/emulator.txt
	rm -rf $(LOCAL_EMULATOR_VENV)
	$(PYTHON) -m venv $(LOCAL_EMULATOR_VENV)
	$(LOCAL_EMULATOR_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r $<
	touch $@

$(LOCAL_AWS_VENV)/.installed: requirements/awscli.txt
	rm -rf $(LOCAL_AWS_VENV)
	$(PYTHON) -m venv $(LOCAL_AWS_VENV)
	$(LOCAL_AWS_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r $<
	touch $@

## local-package: cargo lambda build --release for this machine -> target/lambda/bootstrap/bootstrap.zip
local-package: $(LAMBDA_VENV)/.installed
	$(LAMBDA_TOOLS) cargo lambda build --release --bin bootstrap $(SAM_ARCH_FLAG_$(LOCAL_ARCH))
	cd $(LOCAL_TARGET)/lambda/bootstrap && rm -f bootstrap.zip && $(PYTHON) -m zipfile -c bootstrap.zip bootstrap

## local-clean: remove the local virtual environments and the demo's and tests' logs
local-clean:
	rm -rf $(LOCAL_EMULATOR_VENV) $(LOCAL_AWS_VENV) .cache/local .cache/e2e
