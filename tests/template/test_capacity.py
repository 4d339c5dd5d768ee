"""edr_tools.capacity (`make capacity`): its constants are the code's and
samconfig's, its record sizes are those of the function's own records
(events/records.golden.jsonl, written and checked by tests/sample_events.rs),
and its model gives the numbers docs/guarantees.md states. No AWS, no
timing: pure arithmetic."""

from __future__ import annotations

import json
import math
import re
import tomllib

import pytest

from edr_tools.capacity import formats, limits, model, report
from template_support import ROOT, SAMCONFIG, parse_overrides


def test_sample_events_measure_a_few_hundred_bytes_per_record():
    sizes = model.measure(model.GOLDEN_RECORDS)
    assert sizes.events > 8000 and sizes.submissions > 1000
    assert 300 < sizes.record_data_bytes < 500
    assert sizes.record_bytes == sizes.record_data_bytes + 36
    assert 50 < sizes.body_bytes_per_event < 250


# --- Constants: the code's, samconfig's -------------------------------------------


def rust_const(name: str) -> int:
    """The value of `const NAME: usize = ...;` wherever it is in src/ (today
    src/publisher/pack.rs): exactly one definition."""
    found = []
    for path in sorted((ROOT / "src").rglob("*.rs")):
        found += re.findall(rf"\bconst {name}: usize = ([\d_ *]+);", path.read_text())
    assert len(found) == 1, f"src/: {len(found)} definitions of `const {name}: usize = ...;`, expected one"
    return eval(found[0].replace("_", ""), {})  # digits, underscores and '*' only


def config_default(variable: str) -> int:
    text = (ROOT / "src" / "config.rs").read_text()
    match = re.search(rf'(?:number|millis)\(\s*"{variable}",\s*([\d_]+)', text)
    assert match, f"src/config.rs: no default for {variable}"
    return int(match.group(1).replace("_", ""))


def test_limits_are_the_publishers():
    assert limits.PUT_RECORDS_MAX_RECORDS == rust_const("MAX_RECORDS_PER_CALL")
    assert limits.PUT_RECORDS_MAX_BYTES == rust_const("MAX_BYTES_PER_CALL")


def test_function_defaults_are_the_configs():
    assert limits.DEFAULT_MAX_IN_FLIGHT_CALLS == config_default("MAX_IN_FLIGHT_CALLS")
    assert limits.DEFAULT_DEADLINE_MARGIN_MS == config_default("DEADLINE_MARGIN_MS")
    assert limits.DEFAULT_MAX_EVENTS_PER_SUBMISSION == config_default("MAX_EVENTS_PER_SUBMISSION")


def test_samconfig_default_is_what_samconfig_deploys(defaults):
    overrides = parse_overrides(
        tomllib.loads(SAMCONFIG.read_text())["default"]["deploy"]["parameters"]["parameter_overrides"]
    )
    values = {**defaults, **overrides}
    for name, value in limits.SAMCONFIG_DEFAULT.items():
        assert str(value) == values[name], name


# --- The model -----------------------------------------------------------------------


def sizes() -> model.Sizes:
    return model.Sizes(395.0, 415, 270.0, 110.0, 1, 8, "test")


def inputs(**kw) -> model.Inputs:
    base = {"sensors": 100_000, "events": 8, "interval_s": 60.0}
    return model.Inputs(**{**base, **kw})


@pytest.mark.parametrize(
    "ordering, batch, calls, rounds",
    [
        # docs/guarantees.md, 2: B = 10 sensor submissions of E = 8 events: strict
        # 8 calls (8 rounds, 160 ms at 20 ms), relaxed 1 call; B = 1,000: strict 16
        # calls in 8 rounds, relaxed 16 calls in 2 rounds.
        ("strict", 10, 8, 8),
        ("relaxed", 10, 1, 1),
        ("strict", 1000, 16, 8),
        ("relaxed", 1000, 16, 2),
    ],
)
def test_round_trips_are_those_of_the_readme(ordering, batch, calls, rounds):
    inv = model.invocation(inputs(ordering=ordering), sizes(), batch)
    assert (inv.calls, inv.rounds) == (calls, rounds)
    assert inv.publish_ms == rounds * 20


def test_shards_follow_the_per_shard_limits():
    p = model.plan(inputs(), sizes())
    assert p["load"]["records_per_s"] == pytest.approx(100_000 * 8 / 60)
    assert p["shards_by_records"] == pytest.approx(13.333, abs=1e-3)
    assert p["shards_by_bytes"] == pytest.approx(13_333.33 * 431 / 1_048_576, rel=1e-4)
    assert p["recommended"]["shards"] == math.ceil(13.3334 / 0.75) == 18
    # Records over 1,048 bytes make bytes/s bind before records/s.
    big = model.plan(inputs(record_data_bytes=1500.0), sizes())
    assert big["shards_by_bytes"] > big["shards_by_records"]


def test_strict_mode_bounds_the_largest_submission_by_the_timeout():
    inp = inputs()
    fits = model.strict_events_within(inp, 10, 30)
    assert model.largest_submission_ms(inp, 10, fits) <= 30_000 - 500
    assert model.largest_submission_ms(inp, 10, fits + 1) > 30_000 - 500
    assert 1_000 < fits < 1_475  # at most (30 s - 0.5 s) / 20 ms, less the CPU
    p = model.plan(inp, sizes())
    # Half of what fits, unless the configured maximum is lower already.
    assert p["recommended"]["max_events_per_submission"] == min(inp.max_events, fits // 2)
    assert inp.max_events <= fits // 2, "the default MAX_EVENTS_PER_SUBMISSION fits the default timeout"
    # 500 events at ~23.5 ms each need ~12 s; 10,000 would need over 400 s.
    assert 10 < p["timeout_for_max_events_s"] < 30
    big = model.plan(inputs(max_events=10_000), sizes())
    assert big["timeout_for_max_events_s"] > 400
    assert big["recommended"]["max_events_per_submission"] == fits // 2


def test_erlang_c_reduces_to_mm1():
    p_wait, wait = model.erlang_c_wait_s(1, 0.5, 1.0)
    assert p_wait == pytest.approx(0.5)
    assert wait == pytest.approx(1.0)  # rho / (mu - lambda) = 0.5 / 0.5
    assert model.erlang_c_wait_s(10, 10, 1.0)[1] == math.inf


def test_beyond_a_limit_the_queue_grows():
    p = model.plan(inputs(), sizes())
    default_rows = {row["load"]: row for row in p["latency_default"]}
    # samconfig [default] has one shard: 13,333 records/s is far beyond it.
    assert default_rows[1]["backlog_per_s"] > 0
    assert p["first_bottleneck_default"] == "Kinesis records/s"
    ok = {row["load"]: row for row in p["latency_recommended"]}
    assert math.isfinite(ok[1]["latency_s"]) and ok[1]["latency_s"] < 1


@pytest.mark.parametrize(
    "argv",
    [
        ["-N", "100000", "-E", "8", "-T", "60"],
        ["-N", "1", "-E", "1", "-T", "3600"],
        ["-N", "1000000", "-E", "20", "-T", "30", "--ordering", "relaxed", "--partition-key", "device_id"],
        ["-N", "5000", "-E", "300", "-T", "300", "--batch-size", "100", "--window", "2", "--memory", "1024"],
    ],
)
def test_the_plan_prints(argv, capsys):
    assert report.main(argv) == 0
    out = capsys.readouterr().out
    assert "Recommended settings" in out and "first bottleneck" in out
    assert report.main(argv + ["--json"]) == 0
    json.loads(capsys.readouterr().out)


def test_an_aggregated_record_weighs_what_the_rust_aggregator_counts():
    """src/aggregate/aggregator.rs: record_size_alone("x" * 36, Some("9" * 39), 400)
    is 36 + 20 + 38 + 41 + 410 = 545; each further user record adds its entry (410)."""
    assert formats.aggregated_bytes(1, 400, 36) == 545
    assert formats.aggregated_bytes(8, 400, 36) == 545 + 7 * 410
    assert formats.aggregated_bytes(1, 400, 36, keyed=False) == 36 + 20 + 38 + 408


def test_aggregated_records_need_fewer_shards_and_cost_less_for_small_events():
    per_event, aggregated = formats.side_by_side(3333.3, 8, 395, 36, 0.75)
    assert per_event["records_per_s"] == pytest.approx(8 * aggregated["records_per_s"])
    assert per_event["shards"] > aggregated["shards"]
    assert per_event["put_units_per_s"] == pytest.approx(8 * aggregated["put_units_per_s"])
    assert aggregated["monthly_provisioned_usd"] < per_event["monthly_provisioned_usd"]
    assert aggregated["monthly_on_demand_usd"] < per_event["monthly_on_demand_usd"]
    # A submission over 1 MiB is several records, none over the limit.
    (_, big) = formats.side_by_side(1, 5000, 395, 36, 0.75)
    assert big["records_per_submission"] == 2 and big["record_bytes"] <= formats.MAX_RECORD_BYTES
