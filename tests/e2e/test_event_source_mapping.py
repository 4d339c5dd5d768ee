"""Submissions in through SQS and the event source mapping, events out on Kinesis,
over real HTTP with the real binary and the real SDK."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import time

from edr_tools import fleet as sensor_fleet
from helpers import REGION, ROOT, esm_log_lines, fleet, sqs_event


def test_deploy_script_sensor_batch_round_trip(emulator, aws, function_zip, tmp_path):
    """The user-facing deploy script wires queue -> function -> stream; a sensor
    batch comes out complete, decoded field by field, first copies in order."""
    zip_path = tmp_path / "bootstrap.zip"
    zip_path.write_bytes(function_zip)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ENDPOINT_URL=emulator.endpoint,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION=REGION,
        ZIP=str(zip_path),
        FUNCTION_NAME="e2e-script-fn",
        QUEUE_NAME="e2e-script-submissions",
        STREAM_NAME="e2e-script-events",
        REJECTS_QUEUE_NAME="e2e-script-rejects",
        DLQ_NAME="e2e-script-dlq",
        BATCH_SIZE="5",
        VISIBILITY_TIMEOUT="20",
        FUNCTION_TIMEOUT="10",
    )
    env["PATH"] = f"{ROOT / '.venv-aws' / 'bin'}:{env['PATH']}"
    out = subprocess.run(
        [str(ROOT / "scripts" / "deploy-local.sh")], env=env, text=True, capture_output=True, timeout=300
    )
    assert out.returncode == 0, out.stderr
    deployed = dict(line.split("=", 1) for line in out.stdout.splitlines() if "=" in line)

    esm = aws.lambda_.get_event_source_mapping(UUID=deployed["EVENT_SOURCE_MAPPING"])
    assert esm["BatchSize"] == 5
    assert esm["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    attrs = aws.sqs.get_queue_attributes(QueueUrl=deployed["QUEUE_URL"], AttributeNames=["All"])["Attributes"]
    assert attrs["VisibilityTimeout"] == "20"
    assert json.loads(attrs["RedrivePolicy"])["maxReceiveCount"] in (5, "5")
    config = aws.lambda_.get_function_configuration(FunctionName="e2e-script-fn")
    assert config["Runtime"] == "provided.al2023" and config["Handler"] == "bootstrap"
    assert (
        aws.kinesis.describe_stream_summary(StreamName="e2e-script-events")["StreamDescriptionSummary"][
            "OpenShardCount"
        ]
        == 2
    )

    # Running it again updates in place.
    env["BATCH_SIZE"] = "10"
    again = subprocess.run(
        [str(ROOT / "scripts" / "deploy-local.sh")], env=env, text=True, capture_output=True, timeout=300
    )
    assert again.returncode == 0, again.stderr
    assert aws.lambda_.get_event_source_mapping(UUID=deployed["EVENT_SOURCE_MAPPING"])["BatchSize"] == 10

    entries = fleet(seed=1, devices=4, submissions=16, broken=4)
    sensor_fleet.send(aws.sqs, deployed["QUEUE_URL"], entries)
    sensor_fleet.wait_drained(aws.sqs, deployed["QUEUE_URL"], timeout=90, quiet_polls=3)

    records = sensor_fleet.read_stream(aws.kinesis, "e2e-script-events")
    rejects = sensor_fleet.drain_queue(aws.sqs, deployed["REJECTS_QUEUE_URL"])
    problems = sensor_fleet.report(entries, records, rejects)
    assert problems == 0
    # Every record is keyed by its submission, so a submission lives on one shard.
    by_sid = sensor_fleet.group_by_submission(records)
    for pub in by_sid.values():
        assert pub.partition_keys == {pub.submission_id}
    assert len({r["shard"] for r in records}) == 2, "16 submissions should spread over both shards"
    assert sensor_fleet.queue_depth(aws.sqs, deployed["DLQ_URL"]) == 0

    for url in (deployed["QUEUE_URL"], deployed["REJECTS_QUEUE_URL"], deployed["DLQ_URL"]):
        aws.sqs.delete_queue(QueueUrl=url)
    aws.lambda_.delete_event_source_mapping(UUID=deployed["EVENT_SOURCE_MAPPING"])
    aws.lambda_.delete_function(FunctionName="e2e-script-fn")


def test_partition_key_device_id(deploy):
    stack = deploy(env={"PARTITION_KEY": "device_id"})
    entries = stack.send(fleet(seed=2, devices=3, submissions=9))
    stack.wait_drained()
    records = stack.records()
    by_sid = sensor_fleet.group_by_submission(records)
    for e in entries:
        sub = e["submission"]
        pub = by_sid[sub["submission_id"]]
        assert pub.partition_keys == {sub["device_id"]}
        assert sensor_fleet.check_submission(sub, pub) == []
    # One device, one shard.
    shard_of_device = {}
    for r in records:
        shard_of_device.setdefault(r["partition_key"], set()).add(r["shard"])
    assert all(len(s) == 1 for s in shard_of_device.values())


def test_stream_given_as_arn(deploy):
    stack = deploy(stream_as_arn=True)
    entries = stack.send(fleet(seed=3, devices=2, submissions=3))
    stack.wait_drained()
    by_sid = sensor_fleet.group_by_submission(stack.records())
    for e in entries:
        assert sensor_fleet.check_submission(e["submission"], by_sid.get(e["submission"]["submission_id"])) == []


def test_plain_json_body_is_accepted(deploy):
    stack = deploy()
    entry = fleet(seed=4, devices=1, submissions=1)[0]
    stack.send_bodies([sensor_fleet.encode(entry["submission"], plain=True)])
    stack.wait_drained()
    pub = sensor_fleet.group_by_submission(stack.records()).get(entry["submission"]["submission_id"])
    assert sensor_fleet.check_submission(entry["submission"], pub) == []


def test_invalid_submissions_publish_nothing_and_are_not_retried(deploy, emulator):
    """Invalid bodies are acknowledged: gone from the queue at once, never
    redelivered (a short visibility timeout would bring a retried one back),
    nothing on the stream."""
    stack = deploy(visibility_timeout=2, rejects=False)
    broken = [e for e in fleet(seed=5, devices=4, submissions=8, broken=8)]
    assert all(e["broken"] for e in broken)
    stack.send(broken)
    stack.wait_drained()
    time.sleep(4)  # two visibility timeouts: a retried message would be back by now
    assert stack.depth() == 0
    assert stack.records() == []
    lines = esm_log_lines(emulator, stack.function)
    assert lines and not any("failed processing" in line or "partial failures" in line for line in lines)


def test_rejects_queue_gets_each_invalid_body_with_its_reason(deploy):
    stack = deploy()
    entries = fleet(seed=6, devices=4, submissions=10, broken=4)
    good = fleet(seed=7, devices=1, submissions=1)[0]["submission"]
    garbage = {
        "not base64, not JSON": "invalid_base64",
        base64.b64encode(b"\xff\xfe not utf-8").decode(): "invalid_utf8",
        base64.b64encode(b'{"submission_id": ').decode(): "malformed_json",
        base64.b64encode(b"[1, 2, 3]").decode(): "not_an_object",
        sensor_fleet.encode({**good, "firmware": "4.2"}): "unknown_field",
        sensor_fleet.encode({k: v for k, v in good.items() if k != "device_id"}): "missing_field",
        sensor_fleet.encode(
            {**good, "events": {"new_process": [{"cmdl": "x", "user": "y"}], "file_write": [{"path": "/tmp/x"}]}}
        ): "unknown_event_type",
        sensor_fleet.encode(
            {
                **good,
                "events": {
                    "network_connection": [
                        {"source_ip": "10.0.0.1", "destination_ip": "10.0.0.2", "destination_port": 70000}
                    ]
                },
            }
        ): "invalid_destination_port",
    }
    stack.send(entries)
    ids = stack.send_bodies(list(garbage))
    stack.wait_drained()

    rejects = {m["Body"]: m for m in stack.rejects()}
    expected = {e["body"]: (sensor_fleet.BROKEN_KINDS[e["broken"]], e["message_id"]) for e in entries if e["broken"]}
    expected.update({body: (reason, mid) for (body, reason), mid in zip(garbage.items(), ids)})
    assert set(rejects) == set(expected), "every invalid body, unchanged, exactly once"
    for body, (reason, message_id) in expected.items():
        attrs = rejects[body]["MessageAttributes"]
        assert attrs["reason"] == {"StringValue": reason, "DataType": "String"}, body[:40]
        assert attrs["source_message_id"]["StringValue"] == message_id
    # ... and the valid ones of the same batches went through.
    by_sid = sensor_fleet.group_by_submission(stack.records())
    assert set(by_sid) == {e["submission"]["submission_id"] for e in entries if not e["broken"]}


def test_direct_invoke_returns_documented_batch_response(deploy):
    """Invoke (RequestResponse) through the emulator's Lambda API and Runtime API:
    the response lists exactly the submissions not fully published."""
    stack = deploy(mapping=False)
    entries = fleet(seed=8, devices=2, submissions=3, broken=1)
    event = sqs_event([e["body"] for e in entries], stack.queue_arn)
    body, error = stack.invoke(event)
    assert error is None, body
    assert body == {"batchItemFailures": []}

    # Kinesis unreachable: every valid submission is reported, the invalid one is not.
    down = deploy(
        mapping=False,
        rejects=False,
        env={
            "AWS_ENDPOINT_URL_KINESIS": "http://127.0.0.1:9",
            "MAX_ATTEMPTS": "2",
            "RETRY_BASE_DELAY_MS": "10",
            "RETRY_MAX_DELAY_MS": "20",
            "KINESIS_CONNECT_TIMEOUT_MS": "200",
        },
    )
    body, error = down.invoke(event)
    assert error is None, body
    valid_ids = [r["messageId"] for r, e in zip(event["Records"], entries) if not e["broken"]]
    assert sorted(f["itemIdentifier"] for f in body["batchItemFailures"]) == sorted(valid_ids)


def test_bad_configuration_stops_the_function_at_start(deploy):
    stack = deploy(mapping=False, env={"STREAM_NAME": None})
    body, error = stack.invoke(sqs_event(["{}"]))
    assert error, body
    assert "STREAM_NAME" in json.dumps(body)
    stack = deploy(mapping=False, env={"ORDERING": "sometimes"})
    body, error = stack.invoke(sqs_event(["{}"]))
    assert error and "ORDERING" in json.dumps(body)


def test_fifo_queue_keeps_device_order(deploy):
    """A FIFO source queue (one message group per device): the mapping delivers
    the group in order and every submission arrives complete."""
    stack = deploy(fifo=True)
    entries = fleet(seed=9, devices=3, submissions=9, broken=1)
    for start in range(0, len(entries), 10):
        chunk = entries[start : start + 10]
        resp = stack.aws.sqs.send_message_batch(
            QueueUrl=stack.queue_url,
            Entries=[
                {"Id": str(i), "MessageBody": e["body"], "MessageGroupId": e["device"]} for i, e in enumerate(chunk)
            ],
        )
        assert not resp.get("Failed"), resp
        for ok in resp["Successful"]:
            chunk[int(ok["Id"])]["message_id"] = ok["MessageId"]
    stack.wait_drained()
    by_sid = sensor_fleet.group_by_submission(stack.records())
    for e in entries:
        if not e["broken"]:
            assert sensor_fleet.check_submission(e["submission"], by_sid.get(e["submission"]["submission_id"])) == []
    rejected = stack.rejects()
    assert [m["Body"] for m in rejected] == [e["body"] for e in entries if e["broken"]]
    assert (
        rejected[0]["MessageAttributes"]["reason"]["StringValue"]
        == sensor_fleet.BROKEN_KINDS[next(e["broken"] for e in entries if e["broken"])]
    )
