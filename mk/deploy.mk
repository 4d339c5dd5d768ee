# mk/deploy.mk: build, check and deploy the Lambda with cargo-lambda and AWS SAM.
#
# Included by the top-level Makefile, and self-contained, so this works too:
#   make -f mk/deploy.mk validate
# Every tool but cargo itself comes from the project's virtual environment
# $(VENV), installed from requirements/tools.txt by the first target that
# needs it. Targets: tools build validate sam-build deploy watch invoke
# test-template clean distclean (docs/deploy.md describes each).

VENV ?= .venv
ARCH ?= arm64
PYTHON ?= python3
TEMPLATE ?= template.yaml
DEPLOY_ENV ?= default
EVENT ?= events/sensor-batch.json
WATCH_ADDRESS ?= 127.0.0.1
WATCH_PORT ?= 9000
# The region of every local target (make emulator, deploy-local, demo, watch,
# test-e2e): that of the original homework environment (its LocalStack and its
# sensor fleet run in eu-west-1). Defined here, where mk/local.mk and `watch`
# both see it; docs/local.md documents it.
LOCAL_REGION ?= eu-west-1
# Environment of the function under `cargo lambda watch`. By default every AWS
# call goes to the local emulator of `make emulator` (127.0.0.1:4566, the
# stream `events` of `make deploy-local`, in LOCAL_REGION) with dummy
# credentials, so a local run never reaches AWS; set WATCH_ENV to use a real
# stream instead.
# PIPELINE_KEY is a fixed key for local runs only (docs/contract.md).
WATCH_ENV ?= STREAM_NAME=events AWS_REGION=$(LOCAL_REGION) \
	PIPELINE_KEY=local-watch-only-pipeline-key-0123456789 \
	AWS_ENDPOINT_URL=http://127.0.0.1:4566 AWS_ACCESS_KEY_ID=test \
	AWS_SECRET_ACCESS_KEY=test AWS_EC2_METADATA_DISABLED=true
# Extra arguments for `sam deploy` (e.g. DEPLOY_ARGS=--no-confirm-changeset).
DEPLOY_ARGS ?=
# Where `make test-template` builds, apart from the deployable .aws-sam/build.
CI_BUILD_DIR ?= .aws-sam/ci-build

ifeq ($(filter $(ARCH),arm64 x86_64),)
$(error ARCH must be arm64 or x86_64, not '$(ARCH)')
endif

DEPLOY_VENV_BIN := $(abspath $(VENV))/bin
# cargo-lambda and Zig, apart from SAM (requirements/cargo-lambda.txt): what
# builds the function, for `sam build` and for mk/local.mk's local-package alike.
LAMBDA_VENV := .venv-lambda
LAMBDA_VENV_BIN := $(abspath $(LAMBDA_VENV))/bin
# The same PATH for every cargo-lambda run, `sam build`'s included: a build
# script that watches PATH would otherwise rebuild what the other one built.
LAMBDA_TOOLS := PATH="$(LAMBDA_VENV_BIN):$(DEPLOY_VENV_BIN):$$PATH"
# Tools run with the venv first on PATH (cargo-lambda finds Zig there, SAM
# finds cargo-lambda there) and SAM's telemetry off.
DEPLOY_TOOLS := $(LAMBDA_TOOLS) SAM_CLI_TELEMETRY=0
CARGO_LAMBDA_ARCH_FLAG_arm64 := --arm64
CARGO_LAMBDA_ARCH_FLAG_x86_64 := --x86-64
# What a build for each architecture adds to the environment, run by the
# recipe's shell before the build: `env $$toolchain` then passes it on. For
# arm64, scripts/arm64-toolchain.sh: nothing where rustup has the aarch64
# target, Debian's rustc (installed if need be) where it has not
# (docs/deploy.md, "Building for arm64").
ARCH_TOOLCHAIN_arm64 := toolchain="$$(scripts/arm64-toolchain.sh build)" &&
ARCH_TOOLCHAIN_x86_64 := toolchain= &&
# ELF e_machine of each architecture: checks that SAM built what was asked.
ELF_MACHINE_arm64 := 183
ELF_MACHINE_x86_64 := 62

# Prints the parameter_overrides of samconfig.toml's environment $1, so
# `make deploy` can add Architecture to them (a --parameter-overrides on the
# command line replaces those of samconfig.toml rather than adding to them).
define DEPLOY_SAMCONFIG_OVERRIDES_PY
import sys, tomllib
env = tomllib.load(open("samconfig.toml", "rb")).get(sys.argv[1])
if env is None:
    sys.exit(f"samconfig.toml has no environment {sys.argv[1]!r}")
value = ""
for command in ("deploy", "global"):
    value = env.get(command, {}).get("parameters", {}).get("parameter_overrides", "")
    if value:
        break
print(" ".join(value) if isinstance(value, list) else value)
endef
export DEPLOY_SAMCONFIG_OVERRIDES_PY

# Fails unless the ELF file $1 is for architecture $2.
define deploy_check_elf
$(PYTHON) -c 'import sys; h = open(sys.argv[1], "rb").read(20); \
	m = int.from_bytes(h[18:20], "little"); \
	sys.exit(0 if h[:4] == b"\x7fELF" and m == int(sys.argv[2]) else \
	f"{sys.argv[1]}: ELF machine {m}, expected {sys.argv[2]} ($(2))")' $(1) $(ELF_MACHINE_$(2))
endef

.PHONY: tools build validate sam-build deploy watch invoke test-template clean distclean

## tools: create $(VENV) and install requirements/tools.txt into it
tools: $(VENV)/.installed

$(LAMBDA_VENV)/.installed: requirements/cargo-lambda.txt
	rm -rf $(LAMBDA_VENV)
	$(PYTHON) -m venv $(LAMBDA_VENV)
	$(LAMBDA_VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r $<
	touch $@

$(VENV)/.installed: requirements/tools.txt $(LAMBDA_VENV)/.installed
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --disable-pip-version-check --quiet -r requirements/tools.txt
	touch $@

## build: cargo lambda build --release for $(ARCH) -> target/lambda/bootstrap/bootstrap
build: $(LAMBDA_VENV)/.installed
	$(ARCH_TOOLCHAIN_$(ARCH)) $(LAMBDA_TOOLS) env $$toolchain cargo lambda build --release $(CARGO_LAMBDA_ARCH_FLAG_$(ARCH))

## validate: sam validate --lint and cfn-lint (informational checks too); any finding fails
validate: $(VENV)/.installed
	$(DEPLOY_TOOLS) sam validate --lint --template-file $(TEMPLATE)
	$(DEPLOY_TOOLS) cfn-lint --include-checks I -- $(TEMPLATE)

## sam-build: sam build for $(ARCH) into .aws-sam/build (what sam deploy uploads)
sam-build: $(VENV)/.installed
	$(ARCH_TOOLCHAIN_$(ARCH)) $(DEPLOY_TOOLS) env $$toolchain sam build --config-env $(DEPLOY_ENV) --template-file $(TEMPLATE) \
		--parameter-overrides Architecture=$(ARCH)
	$(call deploy_check_elf,.aws-sam/build/PreprocessorFunction/bootstrap,$(ARCH))

## deploy: sam-build, then sam deploy --config-env $(DEPLOY_ENV) with Architecture=$(ARCH)
deploy: sam-build
	overrides="$$($(DEPLOY_VENV_BIN)/python -c "$$DEPLOY_SAMCONFIG_OVERRIDES_PY" $(DEPLOY_ENV))" || exit 1; \
	$(DEPLOY_TOOLS) sam deploy --config-env $(DEPLOY_ENV) \
		--parameter-overrides $$overrides Architecture=$(ARCH) $(DEPLOY_ARGS)

## watch: run the function locally under cargo lambda watch on $(WATCH_ADDRESS):$(WATCH_PORT)
watch: $(LAMBDA_VENV)/.installed
	$(LAMBDA_TOOLS) cargo lambda watch --invoke-address $(WATCH_ADDRESS) --invoke-port $(WATCH_PORT) \
		$(foreach var,$(WATCH_ENV),--env-var $(var))

## invoke: send $(EVENT) to the function running under `make watch`
invoke: $(LAMBDA_VENV)/.installed
	@test -f "$(EVENT)" || { echo "EVENT=$(EVENT): no such file (make invoke EVENT=events/<file>.json)" >&2; exit 1; }
	$(LAMBDA_TOOLS) cargo lambda invoke bootstrap --invoke-address $(WATCH_ADDRESS) \
		--invoke-port $(WATCH_PORT) --data-file $(EVENT)

## test-template: validate, the template tests, and sam build for $(ARCH) (what CI runs)
# In `make test` after the arm64 build (make arm64-package runs the command
# sam build runs, with the same cargo-lambda, PATH and toolchain), so that
# sam build compiles nothing and the one release build of `make test` is the
# one that ships.
test-template: validate
	$(DEPLOY_TOOLS) $(DEPLOY_VENV_BIN)/python -m pytest -q tests/template
	$(ARCH_TOOLCHAIN_$(ARCH)) $(DEPLOY_TOOLS) env $$toolchain sam build --template-file $(TEMPLATE) \
		--build-dir $(CI_BUILD_DIR) --parameter-overrides Architecture=$(ARCH)
	$(call deploy_check_elf,$(CI_BUILD_DIR)/PreprocessorFunction/bootstrap,$(ARCH))

## clean: remove build outputs (cargo clean, .aws-sam)
clean:
	cargo clean
	rm -rf .aws-sam

## distclean: clean, and remove the deploy tools' virtual environments (.venv, .venv-lambda)
distclean: clean
	rm -rf $(VENV) $(LAMBDA_VENV)
