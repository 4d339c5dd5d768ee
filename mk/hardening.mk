# mk/hardening.mk: the soak test, apart from `make test` (it takes minutes).
#
# Included by the top-level Makefile (after mk/local.mk), and self-contained:
# `make -f mk/hardening.mk soak` works too. It reuses mk/local.mk's virtual
# environments (.venv-emulator for MiniStack, .venv-aws for boto3 and the AWS
# CLI) and its build of the function (local-package: the bootstrap zip for this
# machine). docs/testing.md ("Soak") describes the soak and its last result.

# Standalone (make -f mk/hardening.mk): bring in mk/local.mk (and through it mk/deploy.mk).
ifeq ($(filter %local.mk,$(MAKEFILE_LIST)),)
include $(dir $(lastword $(MAKEFILE_LIST)))local.mk
endif

# How long the sensor fleet keeps the queue busy, in seconds. The whole run
# takes 40-60 s more (start, deploy, drain, checks).
SOAK_SECONDS ?= 180
# Share of PutRecords entries the fault proxy fails at random, half with
# ProvisionedThroughputExceededException, half with InternalFailure.
SOAK_FAILURE_RATE ?= 0.05
# Share of the fleet's submissions that are invalid.
SOAK_BROKEN_SHARE ?= 0.1
# Mapping: messages per invocation and batches in flight (MaximumConcurrency,
# i.e. bootstrap processes MiniStack runs at once). Small batches and ten at
# once give the most invocations per minute on MiniStack (about 10/s on two
# cores), so that the first and the last thousand invocations can be compared.
SOAK_BATCH_SIZE ?= 2
SOAK_CONCURRENCY ?= 10
# The fleet tops the queue up whenever fewer messages than this wait.
SOAK_BACKLOG ?= 200
# The function's MAX_ATTEMPTS: low, so that some random InternalFailures outlast
# the function's own retries and come back through SQS (throttled entries do not
# count against it; the deadline bounds them).
SOAK_MAX_ATTEMPTS ?= 2
# RSS growth that still counts as none: the larger of these two.
SOAK_MEMORY_TOLERANCE_KB ?= 1024
SOAK_MEMORY_TOLERANCE_SHARE ?= 0.05

SOAK_ENV := SOAK_SECONDS=$(SOAK_SECONDS) SOAK_FAILURE_RATE=$(SOAK_FAILURE_RATE) \
	SOAK_BROKEN_SHARE=$(SOAK_BROKEN_SHARE) SOAK_BATCH_SIZE=$(SOAK_BATCH_SIZE) \
	SOAK_CONCURRENCY=$(SOAK_CONCURRENCY) SOAK_BACKLOG=$(SOAK_BACKLOG) \
	SOAK_MAX_ATTEMPTS=$(SOAK_MAX_ATTEMPTS) SOAK_MEMORY_TOLERANCE_KB=$(SOAK_MEMORY_TOLERANCE_KB) \
	SOAK_MEMORY_TOLERANCE_SHARE=$(SOAK_MEMORY_TOLERANCE_SHARE) LOCAL_REGION=$(LOCAL_REGION)

.PHONY: soak

## soak: SOAK_SECONDS (180) of a sensor fleet through queue -> mapping -> function -> flaky Kinesis; checks order, loss, memory
soak: local-venvs local-package
	$(SOAK_ENV) $(EDR_TOOLS) $(LOCAL_AWS_VENV)/bin/python -m edr_tools.soak --zip $(LOCAL_ZIP)
