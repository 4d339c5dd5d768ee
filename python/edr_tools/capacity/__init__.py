"""Capacity plan for edr-preprocessor: N sensors, each sending a submission of
E events every T seconds.

    python -m edr_tools.capacity --sensors 100000 --events 8 --interval 60
    make capacity N=100000 E=8 T=60                       # the same
    make capacity N=100000 E=8 T=60 CAPACITY_ARGS="--rtt-ms 35 --memory 256"

It prints: the load (submissions, records and bytes per second); the Kinesis
shards it needs (provisioned, or what on-demand must scale to); batch size,
batching window, memory, function timeout, visibility timeout and maximum
concurrency for the SQS trigger; the first bottleneck and the load at which
each limit is reached, for the recommended settings and for samconfig.toml's
[default] environment; how end-to-end latency behaves as load grows; and
both record formats (RECORD_FORMAT) side by side, with a month of Kinesis.
docs/operations.md ("Capacity planning") explains the model; every number comes from the
constants and formulas of this package, nothing else:

    limits.py   AWS's limits, the function's limits and defaults, the ASSUMPTIONS
    model.py    record and body sizes, invocations, recommended settings, saturation, latency
    formats.py  RECORD_FORMAT per-event against aggregated: records, shards, PUT units, a month at list prices
    report.py   the plan as text or JSON, and the command line

Where a figure cannot be measured without AWS (PutRecords round trip) or has
not been benchmarked yet, it is a named constant in the ASSUMPTIONS block of
limits.py with its source, and a command-line option overrides it. The size of
a Kinesis record is not computed here: it is measured from
events/records.golden.jsonl, the records the function itself produces for the
sample events in events/ (written and checked by the Rust test
tests/sample_events.rs; `--records` prints them, one JSON document a line).

Standard library only (Python 3.11)."""
