"""Replays stored submissions into the submissions queue: the rejects queue
after a schema, settings or function fix, or the dead-letter queue from each
submission's first event (docs/operations.md, "The day after").

    python -m edr_tools.replay --from-queue <rejects queue URL> --to-queue <submissions queue URL> \\
        [--reason too_many_events ...] [--max 10] [--dry-run]

Each message's body goes to the target queue unchanged, without its message
attributes: the rejects queue's `reason`, `detail`, `dropped_events` and
`source_message_id` describe the old rejection (the function writes new ones
if it refuses the body again), and a dead-letter queue's `edr_resume_from`
marker is left behind on purpose, so the submission is published from its
first event (redrive with SQS's `StartMessageMoveTask` to keep it). A message
is deleted from the source queue only once the target queue took its body.

The same body always gets the same `event_id`s (they are bound to the
content), so whatever a replayed submission publishes again is a duplicate
consumers drop on `event_id`, never new telemetry under an old id.

One run replays each body at most once: a body the function refuses again
comes back to the rejects queue as a new message while the run goes on, and
is left there. Messages left (not matching `--reason`, already replayed,
refused by the target, or all of them with `--dry-run`) are made visible
again when the run ends.

Credentials, region and endpoint are boto3's own (profiles, SSO,
`AWS_ENDPOINT_URL`); the region defaults to the one in the queue URL. Needs
sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility on the
source queue and sqs:SendMessage on the target (and the queues' KMS keys, if
customer-managed).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import sys
from collections import Counter
from dataclasses import dataclass, field

# How long a received message stays hidden from other readers while the run
# holds it; the run makes the ones it leaves visible again at its end.
DEFAULT_VISIBILITY_TIMEOUT_S = 300
# SQS's limit on the entries of one batch request.
BATCH = 10


@dataclass
class Outcome:
    """What one run did, message by message."""

    replayed: Counter = field(default_factory=Counter)  # by reason ("-" for none)
    partly_published: int = 0  # replayed bodies stored with dropped_events
    not_matching: int = 0
    already_replayed: int = 0  # the same body again in this run (refused again)
    send_failed: list[str] = field(default_factory=list)  # source message ids
    delete_failed: list[str] = field(default_factory=list)
    dry_run: list[dict] = field(default_factory=list)

    def summary(self) -> str:
        total = sum(self.replayed.values())
        lines = [f"replayed {total} message(s)" + (f": {dict(sorted(self.replayed.items()))}" if total else "")]
        if self.partly_published:
            lines.append(
                f"  {self.partly_published} of them were published before without some events (dropped_events):"
                " their other events are published again with the same event_id (duplicates consumers drop)"
            )
        if self.dry_run:
            lines.append(f"dry run: {len(self.dry_run)} message(s) would be replayed, none sent or deleted")
            lines += [f"  {d['message_id']} reason={d['reason']} bytes={d['bytes']}" for d in self.dry_run]
        if self.not_matching:
            lines.append(f"left {self.not_matching} message(s) that do not match --reason")
        if self.already_replayed:
            lines.append(f"left {self.already_replayed} message(s) whose body this run already replayed")
        if self.send_failed:
            lines.append(f"NOT replayed, the target refused them (left in the source queue): {self.send_failed}")
        if self.delete_failed:
            lines.append(f"replayed but NOT deleted (they will be replayed again by a later run): {self.delete_failed}")
        return "\n".join(lines)


def attribute(message: dict, name: str) -> str | None:
    value = message.get("MessageAttributes", {}).get(name)
    return value.get("StringValue") if value else None


def replay(
    sqs,
    source_url: str,
    target_url: str,
    *,
    reasons: set[str] | None = None,
    limit: int | None = None,
    group_id: str | None = None,
    dry_run: bool = False,
    visibility_timeout: int = DEFAULT_VISIBILITY_TIMEOUT_S,
    wait_seconds: int = 2,
) -> Outcome:
    """Moves the matching messages of `source_url` into `target_url` (a
    FIFO target needs `group_id`: the replayed messages go there in one
    group, de-duplicated by the SHA-256 of their body)."""
    fifo = target_url.endswith(".fifo")
    if fifo and not group_id:
        raise ValueError("a FIFO target queue needs --group-id")
    outcome, sent_bodies, seen, left = Outcome(), set(), set(), []

    def room() -> bool:
        return limit is None or sum(outcome.replayed.values()) + len(outcome.dry_run) < limit

    while room():
        messages = sqs.receive_message(
            QueueUrl=source_url,
            MaxNumberOfMessages=BATCH,
            WaitTimeSeconds=wait_seconds,
            VisibilityTimeout=visibility_timeout,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        fresh = [m for m in messages if m["MessageId"] not in seen]
        if not fresh:
            break  # nothing, or only what this run holds already
        done = []
        for message in fresh:
            seen.add(message["MessageId"])
            reason = attribute(message, "reason") or "-"
            digest = hashlib.sha256(message["Body"].encode()).hexdigest()
            if not room():
                left.append(message)
            elif reasons and reason not in reasons:
                outcome.not_matching += 1
                left.append(message)
            elif digest in sent_bodies:
                outcome.already_replayed += 1
                left.append(message)
            elif dry_run:
                outcome.dry_run.append(
                    {"message_id": message["MessageId"], "reason": reason, "bytes": len(message["Body"])}
                )
                left.append(message)
            elif send(sqs, target_url, message["Body"], group_id if fifo else None, digest):
                sent_bodies.add(digest)
                outcome.replayed[reason] += 1
                outcome.partly_published += attribute(message, "dropped_events") is not None
                done.append(message)
            else:
                outcome.send_failed.append(message["MessageId"])
                left.append(message)
        outcome.delete_failed += delete(sqs, source_url, done)
    release(sqs, source_url, left)
    return outcome


def send(sqs, target_url: str, body: str, group_id: str | None, digest: str) -> bool:
    extra = {"MessageGroupId": group_id, "MessageDeduplicationId": digest} if group_id else {}
    try:
        sqs.send_message(QueueUrl=target_url, MessageBody=body, **extra)
    except Exception as error:  # noqa: BLE001 - reported per message, the message stays in the source queue
        print(f"send refused: {error}", file=sys.stderr)
        return False
    return True


def delete(sqs, source_url: str, messages: list[dict]) -> list[str]:
    """Deletes `messages`; returns the ids of those SQS did not delete."""
    failed = []
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        answer = sqs.delete_message_batch(
            QueueUrl=source_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)],
        )
        failed += [chunk[int(f["Id"])]["MessageId"] for f in answer.get("Failed", [])]
    return failed


def release(sqs, source_url: str, messages: list[dict]) -> None:
    """Makes the messages this run leaves visible again at once."""
    for start in range(0, len(messages), BATCH):
        chunk = messages[start : start + BATCH]
        sqs.change_message_visibility_batch(
            QueueUrl=source_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(chunk)
            ],
        )


def region_of(queue_url: str) -> str | None:
    match = re.match(r"https://sqs\.([a-z0-9-]+)\.amazonaws\.com", queue_url)
    return match.group(1) if match else None


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m edr_tools.replay", description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--from-queue", required=True, help="the queue to replay: the rejects queue, or the dead-letter queue"
    )
    ap.add_argument("--to-queue", required=True, help="the submissions queue the function reads")
    ap.add_argument("--reason", action="append", help="replay only messages with this `reason` attribute (repeatable)")
    ap.add_argument("--max", type=int, help="replay at most this many messages")
    ap.add_argument("--group-id", help="the message group of a FIFO target queue")
    ap.add_argument("--dry-run", action="store_true", help="list what would be replayed; send and delete nothing")
    ap.add_argument("--visibility-timeout", type=int, default=DEFAULT_VISIBILITY_TIMEOUT_S)
    args = ap.parse_args(argv)

    import boto3

    sqs = boto3.client("sqs", region_name=region_of(args.from_queue))
    outcome = replay(
        sqs,
        args.from_queue,
        args.to_queue,
        reasons=set(args.reason) if args.reason else None,
        limit=args.max,
        group_id=args.group_id,
        dry_run=args.dry_run,
        visibility_timeout=args.visibility_timeout,
    )
    print(outcome.summary())
    return 1 if outcome.send_failed or outcome.delete_failed else 0


if __name__ == "__main__":
    sys.exit(main())
