"""scripts/capacity.py (`make capacity`): its record replica follows README
"Output", its constants are the code's and samconfig's, and its model gives
the numbers README "Guarantees" states. No AWS, no timing: pure arithmetic."""

from __future__ import annotations

import base64
import importlib.util
import json
import math
import re
import sys
import tomllib

import pytest

from template_support import ROOT, SAMCONFIG, docs_text, parse_overrides

spec = importlib.util.spec_from_file_location("capacity", ROOT / "scripts" / "capacity.py")
capacity = importlib.util.module_from_spec(spec)
sys.modules["capacity"] = capacity  # dataclasses look their module up there
spec.loader.exec_module(capacity)

SUBMISSION = "4a1b3c5d-0000-4000-8000-000000000001"
DEVICE = "9f8e7d6c-0000-4000-8000-000000000002"


def readme_record() -> str:
    """The record JSON the contract's "Output" shows (docs/contract.md)."""
    text = docs_text()
    match = re.search(r"^## Output: one Kinesis record per event.*?```json\n(.*?)```", text, re.M | re.S)
    assert match, "README.md and docs/*.md have no record example under '## Output: one Kinesis record per event'"
    return match.group(1)


def test_records_are_built_as_the_readme_specifies():
    expected = json.loads(readme_record())
    body = {
        "submission_id": SUBMISSION.upper(),  # published lowercase whatever the sensor sent
        "device_id": DEVICE,
        "time_created": expected["time_created"],
        "events": {
            "new_process": [{"user": "SYSTEM", "cmdl": "svchost.exe"}],  # field order: the struct's
            "network_connection": [expected["event_data"]],
        },
    }
    encoded = base64.b64encode(json.dumps(body).encode()).decode()
    records = capacity.records_of(encoded, time_processed=expected["time_processed"])
    assert len(records) == expected["event_count"] == 2
    key, data = records[expected["sequence"]]
    assert key == SUBMISSION
    assert list(json.loads(data)) == list(expected), "field order"
    # event_id by README's formula. (README's example shows the id of
    # sequence 0, b8bae67c-..., next to "sequence": 1; src/event.rs's tests
    # give e9df8d64-... for sequence 1, which is what the formula yields.)
    expected["event_id"] = str(capacity.uuid.uuid5(capacity.EVENT_ID_NAMESPACE, f"{DEVICE}/{SUBMISSION}/1"))
    assert expected["event_id"] == "e9df8d64-8eac-5403-a69a-863a5e6764f1"
    assert json.loads(data) == expected
    assert data == json.dumps(expected, separators=(",", ":")).encode(), "compact JSON, as serde_json writes it"
    first = json.loads(records[0][1])
    assert list(first["event_data"]) == ["cmdl", "user"]
    device_keyed = capacity.records_of(encoded, expected["time_processed"], partition_key="device_id")
    assert {k for k, _ in device_keyed} == {DEVICE}


@pytest.mark.parametrize(
    "doc",
    [
        {"submission_id": "not-an-uuid", "device_id": DEVICE, "time_created": "2021-03-29T12:06:09", "events": {}},
        {"submission_id": SUBMISSION, "device_id": DEVICE, "time_created": "yesterday", "events": {}},
        {"submission_id": SUBMISSION, "device_id": DEVICE, "time_created": "2021-03-29T12:06:09",
         "events": {"network_connection": [{"source_ip": "10.0.0.1", "destination_ip": "not-an-ip", "destination_port": 443}]}},
        {"submission_id": SUBMISSION, "device_id": DEVICE, "time_created": "2021-03-29T12:06:09",
         "events": {"new_process": [{"cmdl": None, "user": "x"}]}},
        {"submission_id": SUBMISSION, "device_id": DEVICE, "time_created": "2021-03-29T12:06:09", "events": {}, "x": 1},
    ],
)
def test_invalid_samples_are_not_measured(doc):
    with pytest.raises(ValueError):
        capacity.records_of(json.dumps(doc))


def test_sample_events_measure_a_few_hundred_bytes_per_record():
    sizes = capacity.measure(capacity.SAMPLE_EVENTS)
    assert sizes.events > 8000 and sizes.submissions > 1000
    assert 300 < sizes.record_data_bytes < 500
    assert sizes.record_bytes == sizes.record_data_bytes + 36
    assert 50 < sizes.body_bytes_per_event < 250


# --- Constants: the code's, samconfig's -------------------------------------------


def rust_const(path: str, name: str) -> int:
    text = (ROOT / path).read_text()
    match = re.search(rf"\bconst {name}: usize = ([\d_ *]+);", text)
    assert match, f"{path}: no `const {name}: usize = ...;`"
    return eval(match.group(1).replace("_", ""), {})  # digits, underscores and '*' only


def config_default(variable: str) -> int:
    text = (ROOT / "src" / "config.rs").read_text()
    match = re.search(rf'(?:number|millis)\(\s*"{variable}",\s*([\d_]+)', text)
    assert match, f"src/config.rs: no default for {variable}"
    return int(match.group(1).replace("_", ""))


def test_limits_are_the_publishers():
    assert capacity.PUT_RECORDS_MAX_RECORDS == rust_const("src/publisher.rs", "MAX_RECORDS_PER_CALL")
    assert capacity.PUT_RECORDS_MAX_BYTES == rust_const("src/publisher.rs", "MAX_BYTES_PER_CALL")
    assert str(capacity.EVENT_ID_NAMESPACE) in (ROOT / "src" / "event.rs").read_text()


def test_function_defaults_are_the_configs():
    assert capacity.DEFAULT_MAX_IN_FLIGHT_CALLS == config_default("MAX_IN_FLIGHT_CALLS")
    assert capacity.DEFAULT_DEADLINE_MARGIN_MS == config_default("DEADLINE_MARGIN_MS")
    assert capacity.DEFAULT_MAX_EVENTS_PER_SUBMISSION == config_default("MAX_EVENTS_PER_SUBMISSION")


def test_samconfig_default_is_what_samconfig_deploys(defaults):
    overrides = parse_overrides(tomllib.loads(SAMCONFIG.read_text())["default"]["deploy"]["parameters"]["parameter_overrides"])
    values = {**defaults, **overrides}
    for name, value in capacity.SAMCONFIG_DEFAULT.items():
        assert str(value) == values[name], name


# --- The model -----------------------------------------------------------------------


def sizes() -> capacity.Sizes:
    return capacity.Sizes(395.0, 415, 270.0, 110.0, 1, 8, "test")


def inputs(**kw) -> capacity.Inputs:
    base = {"sensors": 100_000, "events": 8, "interval_s": 60.0}
    return capacity.Inputs(**{**base, **kw})


@pytest.mark.parametrize(
    "ordering, batch, calls, rounds",
    [
        # README "Guarantees" 2: B = 10 sensor submissions of E = 8 events: strict
        # 8 calls (8 rounds, 160 ms at 20 ms), relaxed 1 call; B = 1,000: strict 16
        # calls in 8 rounds, relaxed 16 calls in 2 rounds.
        ("strict", 10, 8, 8),
        ("relaxed", 10, 1, 1),
        ("strict", 1000, 16, 8),
        ("relaxed", 1000, 16, 2),
    ],
)
def test_round_trips_are_those_of_the_readme(ordering, batch, calls, rounds):
    inv = capacity.invocation(inputs(ordering=ordering), sizes(), batch)
    assert (inv.calls, inv.rounds) == (calls, rounds)
    assert inv.publish_ms == rounds * 20


def test_shards_follow_the_per_shard_limits():
    p = capacity.plan(inputs(), sizes())
    assert p["load"]["records_per_s"] == pytest.approx(100_000 * 8 / 60)
    assert p["shards_by_records"] == pytest.approx(13.333, abs=1e-3)
    assert p["shards_by_bytes"] == pytest.approx(13_333.33 * 431 / 1_048_576, rel=1e-4)
    assert p["recommended"]["shards"] == math.ceil(13.3334 / 0.75) == 18
    # Records over 1,048 bytes make bytes/s bind before records/s.
    big = capacity.plan(inputs(record_data_bytes=1500.0), sizes())
    assert big["shards_by_bytes"] > big["shards_by_records"]


def test_strict_mode_bounds_the_largest_submission_by_the_timeout():
    inp = inputs()
    fits = capacity.strict_events_within(inp, 10, 30)
    assert capacity.largest_submission_ms(inp, 10, fits) <= 30_000 - 500
    assert capacity.largest_submission_ms(inp, 10, fits + 1) > 30_000 - 500
    assert 1_000 < fits < 1_475  # at most (30 s - 0.5 s) / 20 ms, less the CPU
    p = capacity.plan(inp, sizes())
    # Half of what fits, unless the configured maximum is lower already.
    assert p["recommended"]["max_events_per_submission"] == min(inp.max_events, fits // 2)
    assert inp.max_events <= fits // 2, "the default MAX_EVENTS_PER_SUBMISSION fits the default timeout"
    # 500 events at ~23.5 ms each need ~12 s; 10,000 would need over 400 s.
    assert 10 < p["timeout_for_max_events_s"] < 30
    big = capacity.plan(inputs(max_events=10_000), sizes())
    assert big["timeout_for_max_events_s"] > 400
    assert big["recommended"]["max_events_per_submission"] == fits // 2


def test_erlang_c_reduces_to_mm1():
    p_wait, wait = capacity.erlang_c_wait_s(1, 0.5, 1.0)
    assert p_wait == pytest.approx(0.5)
    assert wait == pytest.approx(1.0)  # rho / (mu - lambda) = 0.5 / 0.5
    assert capacity.erlang_c_wait_s(10, 10, 1.0)[1] == math.inf


def test_beyond_a_limit_the_queue_grows():
    p = capacity.plan(inputs(), sizes())
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
    assert capacity.main(argv) == 0
    out = capsys.readouterr().out
    assert "Recommended settings" in out and "first bottleneck" in out
    assert capacity.main(argv + ["--json"]) == 0
    json.loads(capsys.readouterr().out)
