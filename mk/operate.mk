# mk/operate.mk: operating the function at scale. docs/operations.md explains
# the plan `make capacity` prints and the model behind it.
#
# Included by the top-level Makefile, and self-contained: `make -f
# mk/operate.mk capacity N=100000 E=8 T=60` works too. Needs only python3 (the
# plan uses the standard library alone), no virtual environment, no AWS.
#
#   make capacity N=100000 E=8 T=60        N sensors, a submission of E events every T seconds
#   make capacity N=100000 E=8 T=60 CAPACITY_ARGS="--rtt-ms 35 --memory 256 --max-events 2000"
#   make capacity N=100000 E=8 T=60 CAPACITY_ARGS=--json
#
# CAPACITY_ARGS takes any option of python/edr_tools/capacity (`PYTHONPATH=python
# python3 -m edr_tools.capacity --help`): the measured PutRecords round trip,
# memory, ordering, partition key, a batch size to plan for, the largest submission.

CAPACITY_PYTHON ?= python3
CAPACITY_TOOLS := $(abspath $(dir $(lastword $(MAKEFILE_LIST)))../python)
CAPACITY_ARGS ?=

.PHONY: capacity

## capacity: capacity plan for N sensors sending E events every T seconds (make capacity N=100000 E=8 T=60)
capacity:
	@if [ -z "$(N)" ] || [ -z "$(E)" ] || [ -z "$(T)" ]; then \
		echo "usage: make capacity N=<sensors> E=<events per submission> T=<seconds between submissions> [CAPACITY_ARGS=...]" >&2; \
		echo "   e.g. make capacity N=100000 E=8 T=60" >&2; \
		exit 2; \
	fi
	@PYTHONPATH=$(CAPACITY_TOOLS) $(CAPACITY_PYTHON) -m edr_tools.capacity --sensors "$(N)" --events "$(E)" --interval "$(T)" $(CAPACITY_ARGS)
