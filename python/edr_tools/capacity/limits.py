"""The numbers the capacity model works with: AWS's documented limits, the
function's own limits and defaults (tests/template/test_capacity.py checks
them against src/ and samconfig.toml), and the ASSUMPTIONS, each with its
source, that a command-line option of `python -m edr_tools.capacity` overrides."""

MIB = 1024 * 1024

# --- AWS limits (documented quotas; per region and account where it applies) ---
KINESIS_SHARD_RECORDS_PER_S = 1_000  # writes per shard, both capacity modes
KINESIS_SHARD_BYTES_PER_S = 1 * MIB  # data + partition key, per shard
ON_DEMAND_INITIAL_RECORDS_PER_S = 4_000  # a new on-demand stream (4 MiB/s, 4,000 records/s)
ON_DEMAND_INITIAL_BYTES_PER_S = 4 * MIB
ON_DEMAND_DOUBLING_MINUTES = 15  # on-demand absorbs up to 2x its previous peak within 15 minutes
LAMBDA_PAYLOAD_BYTES = 6 * MIB  # an SQS batch must fit the 6 MB invocation payload
LAMBDA_MB_PER_VCPU = 1_769  # a function gets one vCPU at 1,769 MB, proportionally less below
ESM_INITIAL_CONCURRENCY = 5  # the SQS trigger starts with 5 concurrent batches ...
ESM_SCALE_PER_MINUTE = 300  # ... adds up to 300 a minute while messages wait ...
ESM_MAX_CONCURRENCY = 1_000  # ... up to 1,000 (also the maximum of MaximumConcurrency)
ACCOUNT_CONCURRENCY_DEFAULT = 1_000  # default Lambda concurrency of an account and region
KINESIS_ACCOUNT_SHARDS_DEFAULT = 200  # default shard quota of an account in most regions (500 in the largest)
SQS_IN_FLIGHT_LIMIT = 120_000  # received but not deleted messages of a standard queue
SQS_BATCH_WITHOUT_WINDOW = 10  # BatchSize above 10 needs a batching window of 1 s or more
SQS_MAX_BATCH = 10_000
SQS_MAX_VISIBILITY_TIMEOUT_S = 43_200
LAMBDA_MAX_TIMEOUT_S = 900

# --- The function (src/publisher/pack.rs, src/config.rs, template.yaml defaults) ---
PUT_RECORDS_MAX_RECORDS = 500  # publisher::MAX_RECORDS_PER_CALL
PUT_RECORDS_MAX_BYTES = 10 * MIB  # publisher::MAX_BYTES_PER_CALL
DEFAULT_MAX_IN_FLIGHT_CALLS = 8  # MAX_IN_FLIGHT_CALLS
DEFAULT_DEADLINE_MARGIN_MS = 500  # DEADLINE_MARGIN_MS
DEFAULT_MAX_EVENTS_PER_SUBMISSION = 500  # MAX_EVENTS_PER_SUBMISSION
PARTITION_KEY_BYTES = 36  # a hyphenated UUID, submission_id or device_id (fallback: measured from the golden file)
# samconfig.toml [default] (production): what the stack runs unless told otherwise.
SAMCONFIG_DEFAULT = {
    "BatchSize": 10,
    "MaximumBatchingWindowInSeconds": 0,
    "FunctionTimeout": 30,
    "VisibilityTimeout": 180,
    "MaximumConcurrency": 10,
    "MemorySize": 128,
    "StreamShardCount": 1,
}

# --- ASSUMPTIONS: not measurable here, or not benchmarked yet ------------------
# One PutRecords round trip from Lambda to Kinesis in the same region, for a
# call of up to 500 small records. Not measurable without AWS; 20 ms is the
# figure docs/guarantees.md section 2 uses. Measure yours: in strict mode a
# batch makes E sequential round trips, so t = PublishLatency p50 / E.
PUT_RECORDS_RTT_MS = 20.0
# CPU to decode, validate and encode one event (base64 + JSON + record JSON +
# uuid5), on one full vCPU. docs/benchmarks.md measures 0.77 us/event for sensor
# submissions and 0.57 us/event for a 1,000-event one on the project's
# (x86_64) machine, 1.1-1.6 us before the encode rewrite. Kept at 2 us: a
# margin of more than 2x for Lambda's slower, shared vCPUs (arm64 by default),
# so the plan errs towards more time, never less.
TRANSFORM_US_PER_EVENT = 2.0
# CPU of one PutRecords call in the SDK (request JSON, SigV4 signing, TLS),
# on one full vCPU. Assumption, not measured (the benchmarks' publisher runs
# against a simulated Kinesis without the SDK); docs/benchmarks.md's batch times
# under a stub Kinesis (`make bench-coldstart`) bound it once they exist.
PUT_RECORDS_CALL_CPU_MS = 0.25
# Per invocation: Runtime API round trip, SQS event parsing, EMF and log
# output. Assumption, not measured; small next to the round trips.
INVOCATION_OVERHEAD_MS = 2.0
# Bytes of one SQS message in the Lambda event besides its body (messageId,
# receiptHandle, attributes, ARN). The sample events have 36-byte receipt
# handles; real ones are several hundred bytes, so round up.
SQS_RECORD_ENVELOPE_BYTES = 1_024
# Batches the trigger fills in parallel (its initial concurrency): with a
# window, a batch of B fills in about B x 5 / S seconds; without one, a batch
# holds what arrived in about one invocation time, divided among them.
# An approximation of the trigger's internals, which AWS does not document.
POLLERS_FILLING_BATCHES = ESM_INITIAL_CONCURRENCY
# Plan every limit for this share of its capacity: headroom for uneven
# hashing across shards, retries, bursts and the trigger's scaling steps.
TARGET_UTILIZATION = 0.75
# Concurrency the batch-size choice aims to stay within (a tenth of the
# account's default 1,000). --concurrency-budget changes it.
CONCURRENCY_BUDGET = 100
# Candidate (BatchSize, MaximumBatchingWindowInSeconds) pairs, smallest first.
BATCH_CANDIDATES = [(10, 0), (50, 1), (100, 1), (250, 2), (500, 2), (1_000, 3), (2_500, 5), (5_000, 5), (10_000, 10)]
# Fallbacks if events/records.golden.jsonl is not there (the figures it gave when this was written).
FALLBACK_RECORD_DATA_BYTES = 395.0
FALLBACK_BODY_FIXED_BYTES = 240.0
FALLBACK_BODY_BYTES_PER_EVENT = 135.0
