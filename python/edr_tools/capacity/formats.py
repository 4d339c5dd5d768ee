"""Per-event against aggregated records (RECORD_FORMAT, docs/contract.md): for
the same load, what each format puts on the stream (records/s, bytes/s), the
shards that needs, the PUT payload units, and a month of Kinesis at list
prices, provisioned and on-demand. Pure arithmetic on the measured record
size; the aggregated record's size is computed byte for byte as
src/aggregate/aggregator.rs counts it (record_size_alone plus one entry per
further event)."""

from __future__ import annotations

import math

from edr_tools.capacity.limits import KINESIS_SHARD_BYTES_PER_S, KINESIS_SHARD_RECORDS_PER_S

MIB = 1024 * 1024
# KINESIS_MAX_RECORD_SIZE_KIB's default: the largest aggregated record.
MAX_RECORD_BYTES = MIB
# The longest ExplicitHashKey (SHARD_PLACEMENT=keyed, the default): 2^128 - 1 in decimal.
EXPLICIT_HASH_KEY_BYTES = 39
FRAME_BYTES = 4 + 16  # magic and MD5
PUT_PAYLOAD_UNIT_BYTES = 25 * 1024
ON_DEMAND_BILLING_UNIT_BYTES = 1024
HOURS_PER_MONTH = 730

# Kinesis Data Streams list prices, US East (N. Virginia), USD: AWS's pricing
# page, aws.amazon.com/kinesis/data-streams/pricing, as of 2025 (the shard-hour
# and PUT unit figures also as a third-party calculator quoted them when
# checked on 2026-12-06; this machine cannot reach AWS's page). Extended
# retention, enhanced fan-out and on-demand data-out are not included.
PRICES = {
    "provisioned_shard_hour": 0.015,
    "provisioned_put_units_per_million": 0.014,
    "on_demand_stream_hour": 0.04,
    "on_demand_gib_in": 0.08,
}
PRICES_SOURCE = "Kinesis Data Streams list prices, US East (N. Virginia), AWS pricing page as of 2025"


def varint_bytes(n: int) -> int:
    return max(1, math.ceil(n.bit_length() / 7))


def delimited(n: int) -> int:
    """A length-delimited protobuf field of n bytes with a one-byte key."""
    return 1 + varint_bytes(n) + n


def aggregated_bytes(events: int, data_bytes: int, key_bytes: int, keyed: bool = True) -> int:
    """One aggregated record of `events` user records of `data_bytes` each, as
    Kinesis counts it (data plus partition key)."""
    ehk = EXPLICIT_HASH_KEY_BYTES if keyed else 0
    tables = delimited(key_bytes) + (delimited(ehk) if keyed else 0)
    entry = delimited(2 + (2 if keyed else 0) + delimited(data_bytes))
    return key_bytes + FRAME_BYTES + tables + events * entry


def side_by_side(
    submissions_per_s: float, events: int, data_bytes: float, key_bytes: float, utilization: float
) -> list[dict]:
    """Both formats for `submissions_per_s` submissions of `events` events."""
    data, key = round(data_bytes), round(key_bytes)
    whole = aggregated_bytes(events, data, key)
    # A submission over the limit is several records (the last one partly full).
    per_submission = math.ceil(whole / MAX_RECORD_BYTES)
    formats = {
        "per-event": (events, data + key),
        "aggregated": (per_submission, math.ceil(whole / per_submission)),
    }
    rows = []
    for name, (records_per_submission, record_bytes) in formats.items():
        records_per_s = submissions_per_s * records_per_submission
        bytes_per_s = records_per_s * record_bytes
        by_records = records_per_s / KINESIS_SHARD_RECORDS_PER_S
        by_bytes = bytes_per_s / KINESIS_SHARD_BYTES_PER_S
        shards = max(1, math.ceil(max(by_records, by_bytes) / utilization))
        put_units_per_s = records_per_s * math.ceil(record_bytes / PUT_PAYLOAD_UNIT_BYTES)
        billed_bytes_per_s = records_per_s * math.ceil(record_bytes / ON_DEMAND_BILLING_UNIT_BYTES) * 1024
        seconds = HOURS_PER_MONTH * 3600
        provisioned = (
            shards * HOURS_PER_MONTH * PRICES["provisioned_shard_hour"]
            + put_units_per_s * seconds / 1e6 * PRICES["provisioned_put_units_per_million"]
        )
        on_demand = (
            HOURS_PER_MONTH * PRICES["on_demand_stream_hour"]
            + billed_bytes_per_s * seconds / 1024**3 * PRICES["on_demand_gib_in"]
        )
        rows.append(
            {
                "format": name,
                "record_bytes": record_bytes,
                "records_per_submission": records_per_submission,
                "records_per_s": records_per_s,
                "bytes_per_s": bytes_per_s,
                "shards_by_records": by_records,
                "shards_by_bytes": by_bytes,
                "shards": shards,
                "put_units_per_s": put_units_per_s,
                "on_demand_billed_bytes_per_s": billed_bytes_per_s,
                "monthly_provisioned_usd": provisioned,
                "monthly_on_demand_usd": on_demand,
            }
        )
    return rows
