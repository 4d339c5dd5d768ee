"""edr_tools: the Python around edr-preprocessor (the function itself is Rust).

Every module runs with `python -m edr_tools.<module>` (the Makefile's targets
do it with PYTHONPATH=python; pytest finds the package through pyproject.toml):

    samples         the one generator of sample submissions and its vocabulary
                    (sensor fleet, sample events, benchmarks)
    sample_events   writes the sample SQS events in events/ (`make events`)
    emulator        starts and stops MiniStack on the loopback (`make emulator`)
    fleet           a fleet of sensors: send, wait until drained, read and check the stream
    fault_proxy     a Kinesis fault-injecting proxy (end-to-end tests, soak)
    demo            `make demo`: the function on MiniStack, end to end
    soak            `make soak`: steady load against a flaky Kinesis, then the checks
    capacity/       `make capacity`: limits, model and report of the capacity plan
    replay          replays the rejects queue (or the dead-letter queue) into the
                    submissions queue (docs/operations.md, "The day after")
    bench/          the Python side of `make bench`: cold-start runner, Runtime API
                    and Kinesis stub, the results table

Standard library only, but for boto3 (fleet, demo, soak, replay) and MiniStack, which
the emulator runs from its own virtual environment (.venv-emulator)."""

from pathlib import Path

# The repository: python/edr_tools/__init__.py -> python -> the root.
ROOT = Path(__file__).resolve().parents[2]
