"""Invariants of template.yaml, samconfig.toml and their documentation.

Each test reads the files as they are and fails if the template loses one of
the properties issue 4 asks for: partial batch responses, the visibility
timeout guidance, parameters for every knob, rules for the combinations AWS
refuses, least-privilege IAM, alarms, outputs, and documentation of every
parameter and make target; and those of issue 7: the SQS trigger invokes the
"live" alias, which CodeDeploy shifts and rolls back on the alarms. The
dashboard and alarms against the code's metric names: test_metrics.py."""

from __future__ import annotations

import re
import tomllib

import pytest

from template_support import (
    DEPLOY_MK,
    DOCS,
    ROOT,
    SAMCONFIG,
    Evaluator,
    function,
    parse_overrides,
    sam_transform,
    satisfies_constraints,
)

# Every environment of samconfig.toml (each is checked the same way).
ENVIRONMENTS = [name for name, env in tomllib.loads(SAMCONFIG.read_text()).items() if isinstance(env, dict)]

# The function's environment variables (its configuration contract) and the
# parameter that sets each.
ENV_PARAMETERS = {
    "PARTITION_KEY": "PartitionKey",
    "ORDERING": "Ordering",
    "INVALID_EVENTS": "InvalidEvents",
    "RESUME": "Resume",
    "MAX_RESUME_HOPS": "MaxResumeHops",
    "RESUME_BASE_DELAY_SECONDS": "ResumeBaseDelaySeconds",
    "RESUME_MAX_DELAY_SECONDS": "ResumeMaxDelaySeconds",
    "SHARD_PLACEMENT": "ShardPlacement",
    "RECORD_FORMAT": "RecordFormat",
    "METRICS_NAMESPACE": "MetricsNamespace",
    "MAX_EVENTS_PER_SUBMISSION": "MaxEventsPerSubmission",
    "MAX_IN_FLIGHT_CALLS": "MaxInFlightCalls",
    "MAX_ATTEMPTS": "MaxAttempts",
    "RETRY_BASE_DELAY_MS": "RetryBaseDelayMs",
    "RETRY_MAX_DELAY_MS": "RetryMaxDelayMs",
    "DEADLINE_MARGIN_MS": "DeadlineMarginMs",
    "KINESIS_CONNECT_TIMEOUT_MS": "KinesisConnectTimeoutMs",
    "KINESIS_CALL_TIMEOUT_MS": "KinesisCallTimeoutMs",
    "KINESIS_MAX_RECORD_SIZE_KIB": "KinesisMaxRecordSizeKiB",
    "LOG_LEVEL": "LogLevel",
}

SQS_POLLER_ACTIONS = {
    "sqs:ReceiveMessage",
    "sqs:DeleteMessage",
    "sqs:GetQueueAttributes",
    "sqs:ChangeMessageVisibility",
}

# What Lambda needs on the role to turn active X-Ray tracing on. Neither
# action has a resource type (Service Authorization Reference, "Actions,
# resources, and condition keys for AWS X-Ray"), so "*" is the only Resource
# they take: the one wildcard of the role, and only while Tracing is Active.
XRAY_WRITE_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}


def refs(node) -> set[str]:
    """Names of every Ref/GetAtt target and ${...} in a template expression."""
    found: set[str] = set()
    if isinstance(node, list):
        for n in node:
            found |= refs(n)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key == "Ref":
                found.add(value)
            elif key == "Fn::GetAtt":
                found.add(value[0])
            elif key == "Fn::Sub":
                text = value[0] if isinstance(value, list) else value
                local = set(value[1]) if isinstance(value, list) else set()
                found |= {m.split(".")[0] for m in re.findall(r"\$\{([^}!]+)\}", text)} - local
                if isinstance(value, list):
                    found |= refs(value[1])
            elif key == "Fn::If":
                found |= refs(value[1:])
            else:
                found |= refs(value)
    return found


def literal_strings(node) -> list[str]:
    """Literal strings of an expression, leaving out condition names of Fn::If
    and separators of Fn::Split/Fn::Join."""
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [s for n in node for s in literal_strings(n)]
    if isinstance(node, dict):
        out = []
        for key, value in node.items():
            if key in ("Ref", "Fn::GetAtt"):
                continue
            if key == "Fn::If":
                out += literal_strings(value[1:])
            elif key in ("Fn::Split", "Fn::Join", "Fn::Select"):
                out += literal_strings(value[1:])
            else:
                out += literal_strings(value)
        return out
    return []


# --- The function ------------------------------------------------------------


def test_function_is_the_rust_bootstrap_on_al2023(resources, parameters):
    fn = function(resources)
    props = fn["Properties"]
    assert fn["Metadata"]["BuildMethod"] == "rust-cargolambda"
    assert fn["Metadata"]["BuildProperties"]["Binary"] == "bootstrap"
    assert props["Runtime"] == "provided.al2023"
    assert props["Handler"] == "bootstrap"
    assert props["CodeUri"] == "."
    assert props["Architectures"] == [{"Ref": "Architecture"}]
    assert parameters["Architecture"]["Default"] == "arm64"
    assert set(parameters["Architecture"]["AllowedValues"]) == {"arm64", "x86_64"}
    assert props["MemorySize"] == {"Ref": "MemorySize"}
    assert parameters["MemorySize"]["Default"] == 128
    assert props["Timeout"] == {"Ref": "FunctionTimeout"}


def test_logs_are_json_in_a_log_group_with_retention(resources, parameters):
    logging = function(resources)["Properties"]["LoggingConfig"]
    assert logging["LogFormat"] == "JSON"
    assert logging["SystemLogLevel"] == "WARN"
    group = resources[logging["LogGroup"]["Ref"]]
    assert group["Type"] == "AWS::Logs::LogGroup"
    assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionInDays"}
    assert parameters["LogRetentionInDays"]["Default"] in parameters["LogRetentionInDays"]["AllowedValues"]


def test_every_setting_of_the_function_is_a_parameter(resources, parameters):
    env = function(resources)["Properties"]["Environment"]["Variables"]
    for variable, parameter in ENV_PARAMETERS.items():
        assert env.get(variable) == {"Ref": parameter}, variable
        assert parameter in parameters
    assert "STREAM_NAME" in env and "REJECTS_QUEUE_URL" in env
    # RUST_LOG would let dependencies log below WARN, payloads included (docs/operations.md, "Log level").
    assert "RUST_LOG" not in env


# The levels Lambda's JSON log filter knows, least severe first (AWS Lambda
# docs, "Log-level filtering"); a line without a valid "level" counts as INFO.
LAMBDA_LEVELS = ["TRACE", "DEBUG", "INFO", "WARN", "ERROR", "FATAL"]


def lambda_keeps(line_level: str | None, application_log_level: str) -> bool:
    level = line_level if line_level in LAMBDA_LEVELS else "INFO"
    return LAMBDA_LEVELS.index(level) >= LAMBDA_LEVELS.index(application_log_level)


def test_lambda_keeps_every_line_and_the_function_applies_log_level(resources, parameters):
    """Issue 11, item 1. The EMF metric documents on stdout have no "level",
    which Lambda's filter counts as INFO: at ApplicationLogLevel WARN or ERROR
    it would drop every one of them (no metrics, the canary alarm blind).
    So Lambda's filter is left at TRACE, the level at which it keeps every
    line, whatever LogLevel says, and LogLevel reaches the function as
    LOG_LEVEL, which it applies itself."""
    props = function(resources)["Properties"]
    logging = props["LoggingConfig"]
    assert logging["ApplicationLogLevel"] == "TRACE", "a literal: no parameter may make Lambda drop lines"
    assert all(lambda_keeps(level, logging["ApplicationLogLevel"]) for level in [None, "", "bogus", *LAMBDA_LEVELS])
    # A stricter ApplicationLogLevel would drop the EMF documents (no level).
    assert not any(lambda_keeps(None, level) for level in ["WARN", "ERROR", "FATAL"])
    assert props["Environment"]["Variables"]["LOG_LEVEL"] == {"Ref": "LogLevel"}
    assert parameters["LogLevel"]["AllowedValues"] == ["TRACE", "DEBUG", "INFO", "WARN", "ERROR"]
    assert parameters["LogLevel"]["Default"] == "INFO"


def test_parameter_ranges_match_what_the_function_accepts(parameters):
    """Defaults and bounds of the environment parameters are those of
    src/config.rs, so the stack never starts a function that refuses its
    configuration."""
    source = (ROOT / "src" / "config.rs").read_text()
    found = {
        name: (int(d.replace("_", "")), int(lo.replace("_", "")), int(hi.replace("_", "")))
        for name, d, lo, hi in re.findall(
            r'(?:number|millis)\(\s*"([A-Z_]+)",\s*([\d_]+),\s*([\d_]+),\s*([\d_]+)\s*\)', source
        )
    }
    numeric = {v: p for v, p in ENV_PARAMETERS.items() if parameters[p]["Type"] == "Number"}
    assert found, 'src/config.rs no longer declares its ranges as number("VAR", default, min, max): update this test'
    assert set(found) == set(numeric), "environment variables of src/config.rs vs the template"
    for variable, (default, low, high) in found.items():
        p = parameters[numeric[variable]]
        assert (p["Default"], p["MinValue"], p["MaxValue"]) == (default, low, high), variable


def test_choice_parameters_offer_what_the_function_accepts(parameters):
    """A setting the function reads as one of a few words (PARTITION_KEY,
    ORDERING, INVALID_EVENTS, ...) is a parameter whose AllowedValues are
    exactly those words and whose default is the function's own: src/config.rs
    reads it with `env.choice("VAR", TABLE)`, and `TABLE` is a
    `Choice { values: &[("a", T::A), ("b", T::B)], default: T::A }`."""
    source = (ROOT / "src" / "config.rs").read_text()
    tables = {}
    for const, body in re.findall(r"const ([A-Z_]+): Choice<\w+> = Choice \{(.*?)\n\};", source, re.S):
        values = re.findall(r'\(\s*"([^"]+)",\s*([\w:]+)\s*\)', body)
        default = re.search(r"default:\s*([\w:]+)", body)
        assert values and default, f"{const}: not a Choice table this test can read"
        (name,) = [word for word, variant in values if variant == default.group(1)]
        tables[const] = ([word for word, _ in values], name)
    choices = {
        variable: tables[const]
        for variable, const in re.findall(r'env\.choice\(\s*"([A-Z_]+)",\s*([A-Z_]+)\s*\)', source)
    }
    assert {"PARTITION_KEY", "ORDERING", "INVALID_EVENTS", "RESUME"} <= set(choices), (
        'src/config.rs no longer reads its choices as env.choice("VAR", TABLE): update this test'
    )
    for variable, (words, default) in choices.items():
        assert variable in ENV_PARAMETERS, f"{variable}: a setting of src/config.rs without a parameter"
        p = parameters[ENV_PARAMETERS[variable]]
        assert p["Type"] == "String" and p["AllowedValues"] == words, variable
        assert p["Default"] == default, variable


# --- The SQS trigger ---------------------------------------------------------


def sqs_event(resources) -> dict:
    (event,) = [e for e in function(resources)["Properties"]["Events"].values() if e["Type"] == "SQS"]
    return event["Properties"]


def test_sqs_trigger_reports_batch_item_failures(resources):
    assert sqs_event(resources)["FunctionResponseTypes"] == ["ReportBatchItemFailures"]


def test_sqs_trigger_settings_are_parameters(resources):
    event = sqs_event(resources)
    assert event["BatchSize"] == {"Ref": "BatchSize"}
    assert event["MaximumBatchingWindowInSeconds"] == {
        "Fn::If": ["IsFifo", {"Ref": "AWS::NoValue"}, {"Ref": "MaximumBatchingWindowInSeconds"}]
    }
    assert event["ScalingConfig"] == {
        "Fn::If": ["CapConcurrency", {"MaximumConcurrency": {"Ref": "MaximumConcurrency"}}, {"Ref": "AWS::NoValue"}]
    }
    assert event["Queue"] == {
        "Fn::If": ["CreateQueue", {"Fn::GetAtt": ["SubmissionsQueue", "Arn"]}, {"Ref": "ExistingQueueArn"}]
    }


def test_batch_size_and_visibility_timeout_have_documented_ranges(parameters):
    batch, visibility = parameters["BatchSize"], parameters["VisibilityTimeout"]
    assert (batch["MinValue"], batch["MaxValue"]) == (1, 10000)
    assert (visibility["MinValue"], visibility["MaxValue"]) == (1, 43200)
    window = parameters["MaximumBatchingWindowInSeconds"]
    assert (window["MinValue"], window["MaxValue"]) == (0, 300)


def test_default_visibility_timeout_is_six_function_timeouts_plus_window(defaults, resources):
    queue = resources["SubmissionsQueue"]["Properties"]
    assert queue["VisibilityTimeout"] == {"Ref": "VisibilityTimeout"}
    needed = 6 * int(defaults["FunctionTimeout"]) + int(defaults["MaximumBatchingWindowInSeconds"])
    assert int(defaults["VisibilityTimeout"]) >= needed


def test_samconfig_has_production_staging_and_high_throughput_environments():
    assert {"default", "staging", "high-throughput"} <= set(ENVIRONMENTS)


@pytest.mark.parametrize("env", ENVIRONMENTS)
def test_samconfig_environments_are_valid_and_follow_the_guidance(env, samconfig, template, defaults, parameters):
    config = samconfig[env]
    deploy = config["deploy"]["parameters"]
    assert config["global"]["parameters"]["stack_name"]
    assert "CAPABILITY_IAM" in deploy["capabilities"]
    assert deploy["resolve_s3"] is True
    overrides = parse_overrides(deploy["parameter_overrides"])
    assert overrides, "an environment without parameter overrides"
    unknown = set(overrides) - set(parameters)
    assert not unknown, f"overrides of parameters the template does not have: {unknown}"
    values = {**defaults, **overrides}
    bad = [name for name, value in values.items() if not satisfies_constraints(parameters[name], value)]
    assert not bad, f"values CloudFormation would refuse: {bad}"
    assert Evaluator(template, values).rule_failures() == []
    needed = 6 * int(values["FunctionTimeout"]) + int(values["MaximumBatchingWindowInSeconds"])
    assert int(values["VisibilityTimeout"]) >= needed
    assert config["build"]["parameters"].get("cached") is not True, "SAM's cache would hash target/ and .venv"


def test_staging_is_its_own_stack_with_the_production_settings(samconfig):
    """Staging rehearses a production deployment: another stack, the same
    trigger, function and publishing settings as the default environment, and
    a traffic-shifting deployment with rollback (not AllAtOnce)."""
    stacks = {env: samconfig[env]["global"]["parameters"]["stack_name"] for env in ENVIRONMENTS}
    assert len(set(stacks.values())) == len(stacks), f"two environments share a stack: {stacks}"
    production = parse_overrides(samconfig["default"]["deploy"]["parameters"]["parameter_overrides"])
    staging = parse_overrides(samconfig["staging"]["deploy"]["parameters"]["parameter_overrides"])
    production.pop("DeploymentType", None)
    assert staging.pop("DeploymentType") != "AllAtOnce"
    assert staging == production, "staging must run production's settings"


@pytest.mark.parametrize("env", ["default", "high-throughput"])
def test_production_environments_deploy_by_canary_or_linear_shift(samconfig, defaults, env):
    overrides = parse_overrides(samconfig[env]["deploy"]["parameters"]["parameter_overrides"])
    kind = overrides.get("DeploymentType", defaults["DeploymentType"])
    assert kind.startswith(("Canary", "Linear")), f"{env}: {kind}"


def test_second_environment_overrides_batch_size_and_visibility_timeout(samconfig):
    default = parse_overrides(samconfig["default"]["deploy"]["parameters"]["parameter_overrides"])
    other = parse_overrides(samconfig["high-throughput"]["deploy"]["parameters"]["parameter_overrides"])
    assert other["BatchSize"] != default.get("BatchSize")
    assert other["VisibilityTimeout"] != default.get("VisibilityTimeout")
    assert "Architecture" not in default and "Architecture" not in other, "make deploy passes Architecture=$(ARCH)"


# --- Rules: combinations AWS refuses -----------------------------------------


@pytest.mark.parametrize(
    "overrides, refused",
    [
        ({}, False),
        ({"BatchSize": "10", "MaximumBatchingWindowInSeconds": "0"}, False),
        ({"BatchSize": "11", "MaximumBatchingWindowInSeconds": "0"}, True),
        ({"BatchSize": "10000", "MaximumBatchingWindowInSeconds": "0"}, True),
        ({"BatchSize": "100", "MaximumBatchingWindowInSeconds": "1"}, False),
        ({"BatchSize": "10000", "MaximumBatchingWindowInSeconds": "300"}, False),
        ({"FifoQueue": "true", "BatchSize": "10", "MaximumBatchingWindowInSeconds": "0"}, False),
        ({"FifoQueue": "true", "BatchSize": "1", "MaximumBatchingWindowInSeconds": "0"}, False),
        ({"FifoQueue": "true", "BatchSize": "11", "MaximumBatchingWindowInSeconds": "1"}, True),
        ({"FifoQueue": "true", "BatchSize": "10", "MaximumBatchingWindowInSeconds": "1"}, True),
        ({"FifoQueue": "true", "BatchSize": "5", "MaximumBatchingWindowInSeconds": "30"}, True),
        ({"MaximumConcurrency": "0"}, False),
        ({"MaximumConcurrency": "1"}, True),
        ({"MaximumConcurrency": "2"}, False),
    ],
)
def test_rules_refuse_what_aws_refuses(template, defaults, overrides, refused):
    failures = Evaluator(template, {**defaults, **overrides}).rule_failures()
    assert bool(failures) == refused, failures


@pytest.mark.parametrize(
    "name, good, bad",
    [
        (
            "ExistingQueueArn",
            ["", "arn:aws:sqs:eu-west-1:123456789012:submissions", "arn:aws:sqs:eu-west-1:123456789012:s.fifo"],
            ["submissions", "arn:aws:sns:eu-west-1:123456789012:t", "*"],
        ),
        (
            "ExistingStreamArn",
            ["", "arn:aws:kinesis:eu-west-1:123456789012:stream/events"],
            ["events", "arn:aws:kinesis:eu-west-1:123456789012:stream/*", "*"],
        ),
        (
            "RejectsQueue",
            ["create", "none", "arn:aws-cn:sqs:cn-north-1:123456789012:rejects"],
            ["", "arn:aws:sqs:eu-west-1:123456789012:rejects.fifo", "*"],
        ),
        ("AlarmTopicArn", ["", "arn:aws:sns:eu-west-1:123456789012:oncall"], ["oncall", "*"]),
        ("BatchSize", ["1", "10000"], ["0", "10001"]),
        ("VisibilityTimeout", ["1", "43200"], ["0", "43201"]),
        ("MaximumBatchingWindowInSeconds", ["0", "300"], ["301"]),
        ("MaximumConcurrency", ["0", "2", "1000"], ["1001"]),
        ("MaxReceiveCount", ["1", "1000"], ["0", "1001"]),
        ("Architecture", ["arm64", "x86_64"], ["aarch64", "amd64"]),
        ("StreamMode", ["PROVISIONED", "ON_DEMAND"], ["on-demand"]),
        ("Resume", ["resend", "off"], ["", "false", "Off", "on"]),
        (
            "QueueKmsKeyArn",
            ["", "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"],
            ["arn:aws:kms:eu-west-1:123456789012:alias/queues", "*", "1234abcd-12ab-34cd-56ef-1234567890ab"],
        ),
    ],
)
def test_parameter_constraints(parameters, name, good, bad):
    for value in good:
        assert satisfies_constraints(parameters[name], value), f"{name}={value!r} refused"
    for value in bad:
        assert not satisfies_constraints(parameters[name], value), f"{name}={value!r} accepted"


def test_every_default_satisfies_its_own_constraints(parameters, defaults):
    for name, p in parameters.items():
        assert "Default" in p, f"{name} has no default: sam deploy would prompt for it"
        assert satisfies_constraints(p, defaults[name]), name
        assert p.get("Description"), f"{name} has no description"


# --- Queue, dead-letter queue, stream, rejects queue -------------------------


def test_queue_has_a_dead_letter_queue_with_parameterised_max_receive_count(resources):
    queue, dlq = resources["SubmissionsQueue"], resources["SubmissionsDeadLetterQueue"]
    assert queue["Condition"] == dlq["Condition"] == "CreateQueue"
    assert queue["Properties"]["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["SubmissionsDeadLetterQueue", "Arn"]},
        "maxReceiveCount": {"Ref": "MaxReceiveCount"},
    }
    # A FIFO queue needs a FIFO dead-letter queue.
    assert queue["Properties"]["FifoQueue"] == dlq["Properties"]["FifoQueue"]
    # The DLQ keeps messages longer than the queue can (14 days, the maximum).
    assert dlq["Properties"]["MessageRetentionPeriod"] == 1209600


def as_list(value) -> list:
    return value if isinstance(value, list) else [value]


DENY_WITHOUT_TLS = {
    "Effect": "Deny",
    "Principal": "*",
    "Action": "sqs:*",
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}


@pytest.mark.parametrize("stage", ["written", "transformed"])
def test_every_queue_the_stack_creates_refuses_requests_without_tls(template, transformed, stage):
    """Issue 19, item 7: SQS accepts plain HTTP unless the queue policy
    denies requests with aws:SecureTransport false. Every queue of the stack
    (the submissions queue, its dead-letter queue, the rejects queue, and any
    added later) has exactly one queue policy, present exactly when the
    queue is, that denies them to every principal, and allows nothing (who
    may read stays with IAM). Checked as written and as CloudFormation
    deploys it (after the SAM transform)."""
    resources = (template if stage == "written" else transformed)["Resources"]
    queues = {name: r for name, r in resources.items() if r["Type"] == "AWS::SQS::Queue"}
    assert {"SubmissionsQueue", "SubmissionsDeadLetterQueue", "RejectsQueueResource"} <= set(queues)
    policies = {name: r for name, r in resources.items() if r["Type"] == "AWS::SQS::QueuePolicy"}
    for name, queue in queues.items():
        covering = [p for p in policies.values() if {"Ref": name} in p["Properties"]["Queues"]]
        assert len(covering) == 1, f"{name}: {len(covering)} queue policies"
        (policy,) = covering
        assert policy.get("Condition") == queue.get("Condition"), f"{name}: its policy exists when it does"
        statements = policy["Properties"]["PolicyDocument"]["Statement"]
        assert all(st["Effect"] == "Deny" for st in statements), f"{name}: a queue policy that allows"
        denied = [
            st
            for st in statements
            if {k: st.get(k) for k in DENY_WITHOUT_TLS} == DENY_WITHOUT_TLS
            and {"Fn::GetAtt": [name, "Arn"]} in as_list(st["Resource"])
        ]
        assert denied, f"{name}: requests without TLS are not denied"
    # Every policy covers only queues of this stack, with their own condition.
    for name, policy in policies.items():
        for queue in policy["Properties"]["Queues"]:
            assert queue["Ref"] in queues, f"{name}: {queue}"


@pytest.mark.parametrize(
    "overrides, with_policy",
    [
        ({}, {"SubmissionsQueue", "SubmissionsDeadLetterQueue", "RejectsQueueResource"}),
        ({"RejectsQueue": "none"}, {"SubmissionsQueue", "SubmissionsDeadLetterQueue"}),
        ({"ExistingQueueArn": "arn:aws:sqs:eu-west-1:123456789012:q"}, {"RejectsQueueResource"}),
    ],
)
def test_queue_policies_come_and_go_with_their_queues(template, resources, defaults, overrides, with_policy):
    """An existing queue's policy is its owner's: the stack sets none on it."""
    evaluator = Evaluator(template, {**defaults, **overrides})
    covered = {
        queue["Ref"]
        for r in resources.values()
        if r["Type"] == "AWS::SQS::QueuePolicy" and evaluator.condition(r["Condition"])
        for queue in r["Properties"]["Queues"]
    }
    assert covered == with_policy


def test_stream_is_created_with_shards_or_on_demand(resources):
    stream = resources["EventsStream"]
    assert stream["Type"] == "AWS::Kinesis::Stream"
    assert stream["Condition"] == "CreateStream"
    props = stream["Properties"]
    assert props["StreamModeDetails"] == {"StreamMode": {"Ref": "StreamMode"}}
    assert props["ShardCount"] == {"Fn::If": ["StreamOnDemand", {"Ref": "AWS::NoValue"}, {"Ref": "StreamShardCount"}]}


def test_the_stream_takes_records_as_large_as_the_function_sends(resources, parameters):
    """Issue 11, item 5: the function's largest record (KINESIS_MAX_RECORD_SIZE_KIB)
    and the created stream's MaxRecordSizeInKiB come from one parameter, so
    the stream never refuses a record the function lets through."""
    env = function(resources)["Properties"]["Environment"]["Variables"]
    stream = resources["EventsStream"]["Properties"]
    assert env["KINESIS_MAX_RECORD_SIZE_KIB"] == stream["MaxRecordSizeInKiB"] == {"Ref": "KinesisMaxRecordSizeKiB"}
    p = parameters["KinesisMaxRecordSizeKiB"]
    # 1 MiB is every stream's default MaxRecordSize; 10 MiB the most Kinesis allows.
    assert (p["Type"], p["Default"], p["MinValue"], p["MaxValue"]) == ("Number", 1024, 1024, 10240)
    assert "UpdateMaxRecordSize" in p["Description"]


@pytest.mark.parametrize(
    "overrides, stream, rejects_url",
    [
        ({}, "created-stream-arn", "created-rejects-url"),
        ({"RejectsQueue": "none"}, "created-stream-arn", None),
        (
            {
                "ExistingStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/events",
                "RejectsQueue": "arn:aws:sqs:eu-west-1:123456789012:edr-rejects",
            },
            "arn:aws:kinesis:eu-west-1:123456789012:stream/events",
            "https://sqs.eu-west-1.amazonaws.com/123456789012/edr-rejects",
        ),
    ],
)
def test_function_environment_follows_existing_resource_parameters(
    resources, template, defaults, overrides, stream, rejects_url
):
    created = {"EventsStream.Arn": "created-stream-arn", "RejectsQueueResource": "created-rejects-url"}
    evaluator = Evaluator(template, {**defaults, **overrides, **created})
    env = function(resources)["Properties"]["Environment"]["Variables"]
    assert evaluator.eval(env["STREAM_NAME"]) == stream
    assert evaluator.eval(env["REJECTS_QUEUE_URL"]) == rejects_url


def test_existing_queue_replaces_the_created_one(template, defaults):
    created = Evaluator(template, defaults)
    existing = Evaluator(template, {**defaults, "ExistingQueueArn": "arn:aws:sqs:eu-west-1:123456789012:q"})
    assert created.condition("CreateQueue") and not existing.condition("CreateQueue")
    outputs = template["Outputs"]
    assert existing.eval(outputs["QueueName"]["Value"]) == "q"
    assert existing.eval(outputs["QueueUrl"]["Value"]) == "https://sqs.eu-west-1.amazonaws.com/123456789012/q"
    alarm = template["Resources"]["OldestMessageAgeAlarm"]["Properties"]["Dimensions"][0]["Value"]
    assert existing.eval(alarm) == "q"


# --- IAM ---------------------------------------------------------------------


def role_statements(resources) -> dict[str, tuple[dict, str | None]]:
    """Statements of the function's role, by policy name, with the condition
    that includes the policy (if any)."""
    role_ref = function(resources)["Properties"]["Role"]
    assert role_ref == {"Fn::GetAtt": ["FunctionRole", "Arn"]}, "the function must use the role written out here"
    out = {}
    for policy in resources["FunctionRole"]["Properties"]["Policies"]:
        condition = None
        if "Fn::If" in policy:
            condition, policy, no = policy["Fn::If"]
            assert no == {"Ref": "AWS::NoValue"}
        (statement,) = policy["PolicyDocument"]["Statement"]
        out[policy["PolicyName"]] = (statement, condition)
    return out


def test_iam_grants_exactly_what_the_function_needs(resources):
    granted = {}
    for name, (statement, condition) in role_statements(resources).items():
        assert statement["Effect"] == "Allow"
        actions = statement["Action"]
        actions = [actions] if isinstance(actions, str) else actions
        # Two policies grant sqs:SendMessage: to the rejects queue and back to the source queue.
        key = frozenset(actions) | ({"resend"} if name.startswith("resend") else set())
        assert key not in granted, f"{name}: the same actions twice"
        granted[key] = (statement["Resource"], condition)
        # Only the KMS grants carry an IAM condition: checked below.
        if not key <= {"kms:Decrypt", "kms:GenerateDataKey"}:
            assert "Condition" not in statement, f"{name}: an unexpected IAM condition"
    assert granted == {
        frozenset({"logs:CreateLogStream", "logs:PutLogEvents"}): ({"Fn::GetAtt": ["FunctionLogGroup", "Arn"]}, None),
        frozenset(SQS_POLLER_ACTIONS): (
            {"Fn::If": ["CreateQueue", {"Fn::GetAtt": ["SubmissionsQueue", "Arn"]}, {"Ref": "ExistingQueueArn"}]},
            None,
        ),
        # DescribeStreamSummary: once at start-up, is the stream AUTO
        # (src/shard_split.rs)? The same stream only.
        frozenset({"kinesis:PutRecords", "kinesis:DescribeStreamSummary"}): (
            {"Fn::If": ["CreateStream", {"Fn::GetAtt": ["EventsStream", "Arn"]}, {"Ref": "ExistingStreamArn"}]},
            None,
        ),
        frozenset({"sqs:SendMessage"}): (
            {
                "Fn::If": [
                    "CreateRejectsQueue",
                    {"Fn::GetAtt": ["RejectsQueueResource", "Arn"]},
                    {"Ref": "RejectsQueue"},
                ]
            },
            "HasRejectsQueue",
        ),
        # RESUME=resend: a submission published part-way goes back to its own
        # queue (SendMessage to the URL built from its eventSourceARN: no
        # GetQueueUrl), the source queue only, and only while Resume is resend.
        frozenset({"sqs:SendMessage", "resend"}): (
            {"Fn::If": ["CreateQueue", {"Fn::GetAtt": ["SubmissionsQueue", "Arn"]}, {"Ref": "ExistingQueueArn"}]},
            "ResumeOn",
        ),
        # An existing queue with a customer-managed key: receiving decrypts,
        # a re-send encrypts (only while Resume is resend).
        frozenset({"kms:Decrypt"}): ({"Ref": "QueueKmsKeyArn"}, "HasQueueKmsKey"),
        frozenset({"kms:GenerateDataKey"}): ({"Ref": "QueueKmsKeyArn"}, "ResumeWithQueueKmsKey"),
        frozenset(XRAY_WRITE_ACTIONS): ("*", "TracingActive"),
    }


def test_the_queue_key_is_usable_only_through_sqs(resources):
    """Review of issue 18: kms:Decrypt and kms:GenerateDataKey on the source
    queue's key are needed only by SQS, which calls KMS on the role's behalf
    when the trigger receives and when a copy is sent back. With the
    condition kms:ViaService = SQS in the stack's region, code running as the
    role cannot decrypt or mint data keys with the key directly."""
    kms = {
        name: statement
        for name, (statement, _) in role_statements(resources).items()
        if any(action.startswith("kms:") for action in statement["Action"])
    }
    assert set(kms) == {"decrypt-submissions-queue", "encrypt-resent-submissions"}
    for name, statement in kms.items():
        assert statement.get("Condition") == {
            "StringEquals": {"kms:ViaService": {"Fn::Sub": "sqs.${AWS::Region}.amazonaws.com"}}
        }, name


def test_the_way_back_to_the_source_queue_is_granted_only_while_resume_is_on(template, resources, defaults):
    """The Resume parameter sets RESUME and the grant together: with
    Resume=off the function never sends back to its queue, so it may not."""
    assert defaults["Resume"] == "resend"
    assert function(resources)["Properties"]["Environment"]["Variables"]["RESUME"] == {"Ref": "Resume"}
    (condition,) = [c for name, (_, c) in role_statements(resources).items() if name.startswith("resend")]
    assert Evaluator(template, defaults).condition(condition)
    assert not Evaluator(template, {**defaults, "Resume": "off"}).condition(condition)


@pytest.mark.parametrize(
    "overrides, decrypt, encrypt",
    [
        ({}, False, False),
        ({"ExistingQueueArn": "arn:aws:sqs:eu-west-1:123456789012:q"}, False, False),
        ({"ExistingQueueArn": "arn:aws:sqs:eu-west-1:123456789012:q", "QueueKmsKeyArn": "KEY"}, True, True),
        (
            {"ExistingQueueArn": "arn:aws:sqs:eu-west-1:123456789012:q", "QueueKmsKeyArn": "KEY", "Resume": "off"},
            True,
            False,
        ),
    ],
)
def test_a_customer_managed_key_on_the_source_queue_is_granted_as_receiving_and_resending_need(
    template, resources, defaults, overrides, decrypt, encrypt
):
    """Issue 19, item 6: SQS encrypts a message sent to a queue with a
    customer-managed key with a data key it asks KMS for on the sender's
    behalf, so a re-send needs kms:GenerateDataKey (and kms:Decrypt, which
    receiving needs anyway) on that key; without it every re-send is refused
    and resume is off. Granted on that key only, GenerateDataKey only while
    Resume is resend."""
    evaluator = Evaluator(template, {**defaults, **overrides})
    granted = {
        action: evaluator.eval(statement["Resource"])
        for statement, condition in role_statements(resources).values()
        if condition is None or evaluator.condition(condition)
        for action in statement["Action"]
        if action.startswith("kms:")
    }
    expected = {"kms:Decrypt": "KEY"} if decrypt else {}
    expected |= {"kms:GenerateDataKey": "KEY"} if encrypt else {}
    assert granted == expected
    assert evaluator.rule_failures() == []


def test_a_queue_key_without_an_existing_queue_is_refused(template, defaults):
    failures = Evaluator(template, {**defaults, "QueueKmsKeyArn": "arn:aws:kms:eu-west-1:123456789012:key/k"})
    assert [f for f in failures.rule_failures() if "QueueKmsKeyArn" in f]


# --- The permissions table of docs/deploy.md ------------------------------------

PERMISSIONS_HEADER = "| Policy | Actions | On | Granted |"


def permissions_table() -> dict[str, list[str]]:
    """docs/deploy.md's table of the role's policies: cells by policy name."""
    text = (ROOT / "docs" / "deploy.md").read_text()
    assert text.count(PERMISSIONS_HEADER) == 1, f"docs/deploy.md has no table headed {PERMISSIONS_HEADER!r}"
    rows = {}
    for line in text.split(PERMISSIONS_HEADER, 1)[1].splitlines()[2:]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        assert len(cells) == 4, f"a permissions row without four cells: {line}"
        (name,) = re.findall(r"`([^`]+)`", cells[0])
        assert name not in rows, f"{name} twice in the permissions table"
        rows[name] = cells
    return rows


def names_in(cell: str) -> set[str]:
    """What a cell names in backticks, a `Parameter=value` by its parameter."""
    return {m.split("=")[0] for m in re.findall(r"`([^`]+)`", cell)}


def condition_parameters(template: dict, node) -> set[str]:
    """The parameters a condition depends on, through the conditions it names."""
    found = set()
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "Condition":
                found |= condition_parameters(template, template["Conditions"][value])
            elif key == "Ref":
                found.add(value)
            else:
                found |= condition_parameters(template, value)
    elif isinstance(node, list):
        for n in node:
            found |= condition_parameters(template, n)
    return found


def test_the_permissions_table_of_the_docs_is_the_roles(template, resources):
    """Issue 19, item 6: docs/deploy.md's table names every policy of the
    function's role, with exactly its actions, the resources it is granted on
    (each resource or parameter of the statement's Resource, in backticks,
    and the key of each IAM condition that narrows it, such as
    `kms:ViaService`) and when: "always" (and why), or the parameters its
    condition depends on."""
    table = permissions_table()
    statements = role_statements(resources)
    assert set(table) == set(statements), "policies of the role vs rows of docs/deploy.md's table"
    problems = []
    for name, (statement, condition) in statements.items():
        _, actions, on, granted = table[name]
        if set(re.findall(r"`([a-z0-9-]+:[A-Za-z]+)`", actions)) != set(statement["Action"]):
            problems.append(f"{name}: actions {actions!r}, the role has {statement['Action']}")
        narrowed_by = {key for test in statement.get("Condition", {}).values() for key in test}
        if names_in(on) != refs(statement["Resource"]) | narrowed_by:
            problems.append(
                f"{name}: on {on!r}, the role names {sorted(refs(statement['Resource']))}"
                f" narrowed by {sorted(narrowed_by)}"
            )
        if condition is None:
            if not granted.startswith("always"):
                problems.append(f"{name}: granted {granted!r}, the role always")
        else:
            needed = condition_parameters(template, template["Conditions"][condition])
            if not needed <= names_in(granted) or granted.startswith("always"):
                problems.append(f"{name}: granted {granted!r}; {condition} depends on {sorted(needed)}")
    assert not problems, "\n".join(problems)


def test_lambdas_loop_guard_is_off_only_while_the_function_bounds_the_loop_itself(
    template, resources, defaults, transformed
):
    """Issue 19, item 1. Resume=resend is SQS -> Lambda -> the same SQS, the
    loop Lambda's recursive-loop detection stops after about 16 invocations
    (RecursiveLoop: Terminate, its default), dropping the copy of a
    submission that still makes progress. The template allows the loop
    exactly while Resume is resend, where MAX_RESUME_HOPS bounds it, and
    SAM passes the property on to the function."""
    recursive_loop = function(resources)["Properties"]["RecursiveLoop"]
    assert Evaluator(template, defaults).eval(recursive_loop) == "Allow"
    assert Evaluator(template, {**defaults, "Resume": "off"}).eval(recursive_loop) == "Terminate"
    env = function(resources)["Properties"]["Environment"]["Variables"]
    assert env["MAX_RESUME_HOPS"] == {"Ref": "MaxResumeHops"}
    (lambda_function,) = [v for v in transformed["Resources"].values() if v["Type"] == "AWS::Lambda::Function"]
    assert lambda_function["Properties"]["RecursiveLoop"] == recursive_loop


def test_iam_resources_are_the_stacks_own_and_never_wildcards(template, resources):
    """Every Resource of every IAM statement in the template names a resource
    of this stack or a parameter holding an ARN; no literal ARN, no "*"."""
    allowed = set(resources) | set(template["Parameters"])
    checked = 0
    for name, resource in resources.items():
        if resource["Type"] not in ("AWS::IAM::Role", "AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
            continue
        assert "ManagedPolicyArns" not in resource["Properties"], f"{name}: managed policies are broader than needed"
        policies = resource["Properties"].get("Policies", [resource["Properties"].get("PolicyDocument")])
        for policy in policies:
            condition = None
            if "Fn::If" in policy:
                condition, policy = policy["Fn::If"][:2]
            document = policy.get("PolicyDocument", policy)
            for statement in document["Statement"]:
                actions = [statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"]
                for action in actions:
                    assert "*" not in action, f"{name}: wildcard action {action}"
                resource_expr = statement["Resource"]
                if (name, condition, set(actions), resource_expr) == (
                    "FunctionRole",
                    "TracingActive",
                    XRAY_WRITE_ACTIONS,
                    "*",
                ):
                    continue  # the one exception, XRAY_WRITE_ACTIONS says why
                assert not any("*" in s for s in literal_strings(resource_expr)), f"{name}: wildcard resource"
                assert not literal_strings(resource_expr), f"{name}: literal resource {resource_expr}"
                targets = refs(resource_expr)
                assert targets and targets <= allowed, f"{name}: resource refers to {targets - allowed}"
                checked += 1
    assert checked >= 4


def test_tracing_is_a_parameter_and_xray_is_granted_only_while_active(template, resources, parameters, defaults):
    """Issue 19.8: the Tracing parameter (PassThrough by default, Active
    possible) is the function's X-Ray mode, as deployed (after the SAM
    transform). Lambda refuses Active for a role that cannot send trace
    segments; PassThrough needs no grant (Lambda's own segments, when the
    caller sampled the request, are not sent with the function's role)."""
    assert parameters["Tracing"]["Default"] == "PassThrough"
    assert parameters["Tracing"]["AllowedValues"] == ["PassThrough", "Active"]
    assert function(resources)["Properties"]["Tracing"] == {"Ref": "Tracing"}
    ((statement, condition),) = [
        (s, c) for s, c in role_statements(resources).values() if any(a.startswith("xray:") for a in s["Action"])
    ]
    assert set(statement["Action"]) == XRAY_WRITE_ACTIONS
    assert not Evaluator(template, defaults).condition(condition)
    assert Evaluator(template, {**defaults, "Tracing": "Active"}).condition(condition)
    for mode in parameters["Tracing"]["AllowedValues"]:
        out = sam_transform(template, {"Tracing": mode})
        (fn,) = [v for v in out["Resources"].values() if v["Type"] == "AWS::Lambda::Function"]
        assert Evaluator(out, {**defaults, "Tracing": mode}).eval(fn["Properties"]["TracingConfig"]["Mode"]) == mode


# The CodeDeploy service role. DeploymentPreference makes SAM add one role,
# CodeDeployServiceRole, with the AWS managed policy AWSCodeDeployRoleForLambda
# (AWSCodeDeployRoleForLambdaLimited in the aws-iso partitions). That policy
# has "Resource": "*" (cloudwatch:DescribeAlarms, lambda:GetAlias,
# lambda:UpdateAlias, lambda:GetProvisionedConcurrencyConfig, sns:Publish,
# and lambda:InvokeFunction on CodeDeployHook_* functions, s3:GetObject on
# CodeDeploy objects), which issue 4's rule "no managed policy" forbids. It is
# allowed here, and only this one, because: only the CodeDeploy service can
# assume the role (the trust policy is checked below); it is what CodeDeploy
# is documented and tested with for Lambda traffic shifting; and a hand-written
# narrower role (DeploymentPreference.Role) could not be tried here (no AWS
# account), while a mistake in it would make every production deployment fail
# or stop its rollback. The function's own role stays exactly issue 4's.
CODEDEPLOY_ROLE = "CodeDeployServiceRole"
CODEDEPLOY_MANAGED_POLICY = "arn:aws:iam::aws:policy/service-role/AWSCodeDeployRoleForLambda"

# Whole failures, then partial publishing (issue 19, item 4; test_metrics.py
# ties the list to the metrics that reveal it).
ROLLBACK_ALARMS = ["FunctionErrorsAlarm", "SubmissionsFailedAlarm", "SubmissionsResentAlarm", "EventsDroppedAlarm"]


@pytest.fixture(scope="session")
def transformed(template) -> dict:
    return sam_transform(template)


def test_sam_transform_adds_no_wildcard_permissions(transformed):
    """What CloudFormation deploys is the SAM-transformed template: check that
    SAM adds no role or managed policy to the function (it would, with
    Resource "*", if the function had Policies instead of Role), and that the
    only role it adds is CodeDeploy's, assumable by CodeDeploy alone."""
    out = transformed
    roles = {k: v for k, v in out["Resources"].items() if v["Type"].startswith("AWS::IAM::")}
    assert set(roles) == {"FunctionRole", CODEDEPLOY_ROLE}
    assert "ManagedPolicyArns" not in roles["FunctionRole"]["Properties"]
    codedeploy = roles[CODEDEPLOY_ROLE]["Properties"]
    assert codedeploy["ManagedPolicyArns"] == [CODEDEPLOY_MANAGED_POLICY]
    assert "Policies" not in codedeploy, "the CodeDeploy role must not gain inline permissions"
    (statement,) = codedeploy["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Effect"] == "Allow"
    assert statement["Principal"] == {"Service": ["codedeploy.amazonaws.com"]}
    assert statement["Action"] == ["sts:AssumeRole"]
    mappings = [v for v in out["Resources"].values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert len(mappings) == 1
    assert mappings[0]["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert "Rules" in out, "the SAM transform must keep the Rules"


# --- Safe deployments ----------------------------------------------------------


def alias_of(transformed: dict) -> tuple[str, dict]:
    (alias,) = [(k, v) for k, v in transformed["Resources"].items() if v["Type"] == "AWS::Lambda::Alias"]
    return alias


def test_sqs_trigger_invokes_the_live_alias(transformed):
    """The event source mapping names the alias, so only versions that went
    through CodeDeploy receive batches (never $LATEST)."""
    alias_id, alias = alias_of(transformed)
    assert alias["Properties"]["Name"] == "live"
    assert alias["Properties"]["FunctionName"] == {"Ref": "PreprocessorFunction"}
    (mapping,) = [v for v in transformed["Resources"].values() if v["Type"] == "AWS::Lambda::EventSourceMapping"]
    assert mapping["Properties"]["FunctionName"] == {"Ref": alias_id}
    assert transformed["Outputs"]["LiveAliasArn"]["Value"] == {"Ref": alias_id}


def test_alias_moves_through_codedeploy_and_rolls_back_on_the_alarms(transformed):
    resources = transformed["Resources"]
    _, alias = alias_of(transformed)
    update = alias["UpdatePolicy"]["CodeDeployLambdaAliasUpdate"]
    group = resources[update["DeploymentGroupName"]["Ref"]]
    assert group["Type"] == "AWS::CodeDeploy::DeploymentGroup"
    assert resources[update["ApplicationName"]["Ref"]]["Type"] == "AWS::CodeDeploy::Application"
    props = group["Properties"]
    assert props["AlarmConfiguration"]["Enabled"] is True
    assert [a["Name"] for a in props["AlarmConfiguration"]["Alarms"]] == [{"Ref": a} for a in ROLLBACK_ALARMS]
    assert props["AutoRollbackConfiguration"]["Enabled"] is True
    assert {"DEPLOYMENT_FAILURE", "DEPLOYMENT_STOP_ON_ALARM"} <= set(props["AutoRollbackConfiguration"]["Events"])
    assert props["ServiceRoleArn"] == {"Fn::GetAtt": [CODEDEPLOY_ROLE, "Arn"]}
    for name in ROLLBACK_ALARMS:
        assert resources[name]["Type"] == "AWS::CloudWatch::Alarm"


def test_deployment_type_parameter_offers_canary_linear_and_all_at_once(parameters):
    from samtranslator.model.preferences.deployment_preference_collection import (
        CODEDEPLOY_PREDEFINED_CONFIGURATIONS_LIST,
    )

    allowed = parameters["DeploymentType"]["AllowedValues"]
    unknown = set(allowed) - set(CODEDEPLOY_PREDEFINED_CONFIGURATIONS_LIST)
    assert not unknown, f"not CodeDeploy predefined Lambda configurations: {unknown}"
    assert any(v.startswith("Canary") for v in allowed)
    assert any(v.startswith("Linear") for v in allowed)
    assert "AllAtOnce" in allowed
    assert parameters["DeploymentType"]["Default"].startswith("Canary")


@pytest.mark.parametrize(
    "kind",
    [
        "Canary10Percent5Minutes",
        "Canary10Percent10Minutes",
        "Canary10Percent15Minutes",
        "Canary10Percent30Minutes",
        "Linear10PercentEvery1Minute",
        "Linear10PercentEvery2Minutes",
        "Linear10PercentEvery3Minutes",
        "Linear10PercentEvery10Minutes",
        "AllAtOnce",
    ],
)
def test_each_deployment_type_becomes_a_predefined_codedeploy_config(template, parameters, kind):
    """Each allowed value is one of CodeDeploy's predefined Lambda configs (a
    value SAM did not know would reach CodeDeploy as is and fail there)."""
    assert kind in parameters["DeploymentType"]["AllowedValues"]
    out = sam_transform(template, {"DeploymentType": kind})
    (group,) = [v for v in out["Resources"].values() if v["Type"] == "AWS::CodeDeploy::DeploymentGroup"]
    config = Evaluator(out, {}).eval(group["Properties"]["DeploymentConfigName"])
    assert config == f"CodeDeployDefault.Lambda{kind}"


def test_every_function_property_change_publishes_a_version(resources):
    props = function(resources)["Properties"]
    assert props["AutoPublishAlias"] == "live"
    assert props["AutoPublishAliasAllProperties"] is True


def version_ids(out: dict) -> set[str]:
    return {k for k, v in out["Resources"].items() if v["Type"] == "AWS::Lambda::Version"}


def test_a_change_of_parameter_values_alone_publishes_no_version(template):
    """Known SAM limitation (aws/serverless-application-model#3820), which
    docs/operations.md ("Safe deployments") explains with its workaround: the version's logical id
    hashes the function's properties as written (a Ref stays a Ref), so a new
    parameter value changes $LATEST but publishes no version, and the alias
    keeps the old configuration. If this test fails, SAM fixed it: update
    docs/operations.md ("Safe deployments" > "Configuration changes") and this test."""
    base = version_ids(sam_transform(template))
    code = {**template, "Resources": {**template["Resources"]}}
    fn = dict(code["Resources"]["PreprocessorFunction"])
    fn["Properties"] = {**fn["Properties"], "Timeout": 31}
    code["Resources"]["PreprocessorFunction"] = fn
    assert version_ids(sam_transform(code)) != base, "a property written in the template publishes a version"
    for overrides in ({"Ordering": "relaxed"}, {"FunctionTimeout": "60"}, {"MemorySize": "256"}):
        assert version_ids(sam_transform(template, overrides)) == base, overrides


# --- Alarms and outputs ------------------------------------------------------


def test_alarms_cover_dlq_oldest_message_function_errors_and_failed_submissions(resources, defaults):
    def namespace(r):
        ns = r["Properties"]["Namespace"]
        return ns if isinstance(ns, str) else f"Ref:{ns['Ref']}"

    every_alarm = {name: r for name, r in resources.items() if r["Type"] == "AWS::CloudWatch::Alarm"}
    # The shares (metric math): test_metrics.py checks what they read.
    alarms = {
        (namespace(r), r["Properties"]["MetricName"]): (name, r)
        for name, r in every_alarm.items()
        if "Metrics" not in r["Properties"]
    }
    dlq_name, dlq = alarms[("AWS/SQS", "ApproximateNumberOfMessagesVisible")]
    assert dlq["Properties"]["Dimensions"][0]["Value"] == {"Fn::GetAtt": ["SubmissionsDeadLetterQueue", "QueueName"]}
    assert dlq["Properties"]["Threshold"] == 1
    _, age = alarms[("AWS/SQS", "ApproximateAgeOfOldestMessage")]
    assert age["Properties"]["Threshold"] == {"Ref": "OldestMessageAgeAlarmSeconds"}
    _, errors = alarms[("AWS/Lambda", "Errors")]
    assert errors["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PreprocessorFunction"}}]
    # The function's own EMF metric, in the namespace the function is given.
    _, failed = alarms[("Ref:MetricsNamespace", "SubmissionsFailed")]
    assert failed["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PreprocessorFunction"}}]
    assert failed["Properties"]["Statistic"] == "Sum"
    assert failed["Properties"]["Threshold"] == {"Ref": "SubmissionsFailedAlarmThreshold"}
    # A submission acknowledged on more than one shard (AUTO distribution or
    # a reshard): its own threshold, 1 per 5 minutes by default.
    split_name, split = alarms[("Ref:MetricsNamespace", "SubmissionsSplitAcrossShards")]
    assert split_name == "SubmissionsSplitAcrossShardsAlarm"
    assert split["Properties"]["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "PreprocessorFunction"}}]
    assert split["Properties"]["Statistic"] == "Sum"
    assert split["Properties"]["Threshold"] == {"Ref": "SubmissionsSplitAcrossShardsAlarmThreshold"}
    assert defaults["SubmissionsSplitAcrossShardsAlarmThreshold"] == "1"
    resent, dropped = every_alarm["SubmissionsResentAlarm"], every_alarm["EventsDroppedAlarm"]
    assert resent["Properties"]["Threshold"] == {"Ref": "SubmissionsResentAlarmPercent"}
    assert dropped["Properties"]["Threshold"] == {"Ref": "EventsDroppedAlarmPercent"}
    notify = {"Fn::If": ["HasAlarmTopic", [{"Ref": "AlarmTopicArn"}], {"Ref": "AWS::NoValue"}]}
    for alarm in every_alarm.values():
        assert alarm["Properties"]["AlarmActions"] == notify
        assert alarm["Properties"]["OKActions"] == notify
        assert alarm["Properties"]["TreatMissingData"] == "notBreaching"


def test_outputs_name_every_resource_a_user_needs(template):
    outputs = template["Outputs"]
    for name in [
        "FunctionName",
        "FunctionArn",
        "QueueName",
        "QueueArn",
        "QueueUrl",
        "DeadLetterQueueName",
        "DeadLetterQueueArn",
        "DeadLetterQueueUrl",
        "StreamName",
        "StreamArn",
        "RejectsQueueUrl",
        "RejectsQueueArn",
        "LiveAliasArn",
        "DeploymentApplicationName",
        "DeploymentGroupName",
        "DashboardName",
        "DashboardUrl",
    ]:
        assert name in outputs, name
        assert outputs[name].get("Description"), name


def test_stateful_resources_say_what_happens_on_delete(resources):
    for name, r in resources.items():
        if r["Type"] in ("AWS::SQS::Queue", "AWS::Kinesis::Stream", "AWS::Logs::LogGroup"):
            assert r.get("DeletionPolicy") and r.get("UpdateReplacePolicy"), name


# --- Documentation -----------------------------------------------------------


def documentation() -> str:
    """README.md's "## Deploy" section and every docs/*.md (docs/deploy.md has the tables)."""
    text = ""
    for path in DOCS:
        if path.exists():
            content = path.read_text()
            if path.name == "README.md":
                match = re.search(r"^## Deploy.*?(?=^## (?!#)|\Z)", content, re.M | re.S)
                content = match.group(0) if match else ""
            text += content + "\n"
    assert text.strip(), "neither README.md (## Deploy) nor docs/*.md documents the deployment"
    return text


def test_every_parameter_is_documented_with_its_default(parameters):
    docs = documentation()
    missing = []
    for name, p in parameters.items():
        default = p.get("Default", "")
        shown = '`""`' if default == "" else f"`{default}`"
        rows = [line for line in docs.splitlines() if re.match(rf"\|\s*`{name}`\s*\|", line)]
        if not any(shown in row.split("|")[2] for row in rows):
            missing.append(f"{name} (default {shown})")
    assert not missing, f"parameters without a docs row '| `Name` | default | ...': {missing}"


def test_every_make_target_is_documented():
    docs = documentation()
    phony = re.search(r"^\.PHONY:(.*)$", DEPLOY_MK.read_text(), re.M).group(1).split()
    assert {"build", "validate", "sam-build", "deploy", "invoke", "watch", "clean", "test-template"} <= set(phony)
    rows = {m.group(1) for m in re.finditer(r"^\|\s*`make ([\w-]+)`\s*\|", docs, re.M)}
    missing = [t for t in phony if t not in rows]
    assert not missing, f"make targets without a docs row '| `make target` | ...': {missing}"


def test_docs_give_the_exact_deploy_commands_and_the_arm64_caveat():
    docs = documentation()
    assert "sam build && sam deploy" in docs
    assert "sam deploy --config-env high-throughput" in docs
    assert "sam deploy --config-env staging" in docs
    assert "arm64" in docs and "x86_64" in docs


def test_tools_are_pinned():
    pins = {}
    # The deploy toolchain: SAM and cfn-lint, and the cargo-lambda `sam build` runs.
    deploy_tools = ("tools.txt", "cargo-lambda.txt")
    lines = [line for f in deploy_tools for line in (ROOT / "requirements" / f).read_text().splitlines()]
    for line in lines:
        line = line.split("#")[0].strip()
        if line:
            name, sep, version = line.partition("==")
            assert sep and version, f"not pinned: {line}"
            pins[name.lower()] = version
    assert {"aws-sam-cli", "cfn-lint", "cargo-lambda", "pytest", "pyyaml"} <= set(pins)
