"""The dashboard and alarms of template.yaml against the metrics the code emits.

The function's EMF metrics (src/metrics.rs) are a contract with everything
that reads them: a dashboard graph or an alarm on a name the function does not
emit shows nothing and never fires, silently. These tests read the metric
names and dimensions from the Rust source (its `pub const NAME: &str = "..."`
constants and the `METRIC_NAMES` list), the dashboard body and alarms from the
template, and fail on any mismatch, in both directions:

- every metric of the function's namespace that the dashboard or an alarm
  names is one the code emits, with dimensions the code emits it with
  (`FunctionName` = this function; `Reason` too for per-reason rejections);
- every metric the code emits is on the dashboard, with `FunctionName`, and
  each one the code also breaks down by `Reason` is there by `Reason` too;
- the namespace is the one the function is given (`METRICS_NAMESPACE`, from
  the `MetricsNamespace` parameter), never a literal;
- an alarm on a share (metric math) is graphed on the dashboard, the same
  expression over the same metrics, with its threshold;
- the canary (CodeDeploy's rollback alarms) watches every metric that shows
  a version publishing only part of a submission, and docs/operations.md
  says what each alarm means and what to look at first.

They run in `make test-template` (part of `make test`) and need no AWS."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

import pytest

import template_support
from template_support import Evaluator, function

# Stand-ins for values CloudFormation fills in at deploy time. The namespace
# is deliberately not the default, so that a dashboard or alarm that spells
# the default out instead of using the parameter is caught.
NAMESPACE = "Test/Edr.Namespace"
FUNCTION = "edr-stack-PreprocessorFunction-AbC123"
QUEUE = "edr-stack-SubmissionsQueue-AbC123"
DLQ = "edr-stack-SubmissionsDeadLetterQueue-AbC123"
STREAM = "edr-stack-EventsStream-AbC123"
STUBS = {
    "MetricsNamespace": NAMESPACE,
    "PreprocessorFunction": FUNCTION,
    "SubmissionsQueue.QueueName": QUEUE,
    "SubmissionsDeadLetterQueue.QueueName": DLQ,
    "EventsStream": STREAM,
}
# AWS namespaces the dashboard may use, with the dimension and the resource
# each must name.
AWS_NAMESPACES = {
    "AWS/SQS": ("QueueName", {QUEUE, DLQ}),
    "AWS/Lambda": ("FunctionName", {FUNCTION}),
    "AWS/Kinesis": ("StreamName", {STREAM}),
}


# --- What the code emits -------------------------------------------------------


@dataclass(frozen=True)
class CodeMetrics:
    names: tuple[str, ...]  # METRIC_NAMES, in order
    function_dimension: str  # DIMENSION_FUNCTION
    reason_dimension: str  # DIMENSION_REASON
    by_reason: frozenset[str]  # metrics also emitted with [function, reason]


def _strip_comments(source: str) -> str:
    source = re.sub(r"/\*.*?\*/", "", source, flags=re.S)
    return re.sub(r"//[^\n]*", "", source)


def parse_metrics_rs(source: str) -> CodeMetrics:
    """Reads src/metrics.rs as text. Fails loudly (rather than skip) when the
    source no longer has the shape this parser knows, so a refactoring of
    metrics.rs cannot turn the consistency check off."""
    code = _strip_comments(source)
    consts = dict(
        re.findall(
            r'\bpub(?:\([^)]*\))?\s+const\s+([A-Z][A-Z0-9_]*)\s*:\s*&(?:\'static\s+)?str\s*=\s*"([^"]*)"\s*;', code
        )
    )
    assert consts, 'src/metrics.rs: no `pub const NAME: &str = "...";` constants found; update this parser'
    listing = re.search(
        r"\bpub(?:\([^)]*\))?\s+const\s+METRIC_NAMES\s*:\s*(?:\[\s*&(?:'static\s+)?str\s*;\s*(\d+)\s*\]|&\[\s*&(?:'static\s+)?str\s*\])\s*=\s*&?\[(.*?)\]\s*;",
        code,
        re.S,
    )
    assert listing, "src/metrics.rs: no `pub const METRIC_NAMES: [&str; N] = [...]`; update this parser"
    declared_len, body = listing.groups()
    names = []
    for item in (i.strip() for i in body.split(",")):
        if not item:
            continue
        if item.startswith('"'):
            names.append(item.strip('"'))
        else:
            assert item in consts, f"METRIC_NAMES names {item}, which is not a `pub const {item}: &str`"
            names.append(consts[item])
    if declared_len is not None:
        assert len(names) == int(declared_len), f"METRIC_NAMES: parsed {len(names)} names, declared {declared_len}"
    assert len(set(names)) == len(names), f"METRIC_NAMES has duplicates: {names}"
    for name in names:
        assert re.fullmatch(r"[A-Za-z0-9_.\-]{1,255}", name), f"not a plain CloudWatch metric name: {name!r}"
    for const in ("DIMENSION_FUNCTION", "DIMENSION_REASON"):
        assert const in consts, f"src/metrics.rs: no `pub const {const}: &str`"
    # A metric defined by name in an EMF document is one of METRIC_NAMES, so
    # that the dashboard check below sees it (the Rust test `metrics::tests`
    # proves the totals document carries exactly METRIC_NAMES).
    for const in re.findall(r'"Name"\s*:\s*([A-Z][A-Z0-9_]*)', code):
        assert consts.get(const) in names, f"src/metrics.rs emits {const}, which is not in METRIC_NAMES"

    # Which metrics are emitted with which dimension list: every EMF document
    # is built by `document(namespace, timestamp, &[DIMENSIONS...], metrics)`;
    # the metric constants named since the previous such call, as
    # `"Name": CONST` or as the first item of a tuple `(CONST, ...)` (a list
    # of (name, value) pairs, or names mapped onto reasons), are those of this
    # document. (The totals document names most of its metrics through a
    # loop; the Rust test `metrics::tests` proves it carries every one of
    # METRIC_NAMES with [FunctionName].)
    metric_consts = {c for c, value in consts.items() if value in names}
    by_dimensions: dict[tuple[str, ...], set[str]] = {}
    position = 0
    for call in re.finditer(r"\bdocument\(\s*[^,]+,\s*[^,]+,\s*&\[([A-Z_,\s]+)\]", code):
        dims = tuple(d.strip() for d in call.group(1).split(",") if d.strip())
        before = code[position : call.start()]
        named = re.findall(r'"Name"\s*:\s*([A-Z][A-Z0-9_]*)', before)
        named += re.findall(r"\(\s*([A-Z][A-Z0-9_]*)\s*,", before)
        by_dimensions.setdefault(dims, set()).update(consts[n] for n in named if n in metric_consts)
        position = call.end()
    assert ("DIMENSION_FUNCTION",) in by_dimensions, (
        "no EMF document with [DIMENSION_FUNCTION] found; update this parser"
    )
    with_reason = by_dimensions.get(("DIMENSION_FUNCTION", "DIMENSION_REASON"))
    assert with_reason, (
        "no EMF document with [DIMENSION_FUNCTION, DIMENSION_REASON] naming a metric; update this parser"
    )
    for dims in by_dimensions:
        assert dims in {("DIMENSION_FUNCTION",), ("DIMENSION_FUNCTION", "DIMENSION_REASON")}, (
            f"new dimension set {dims}"
        )
    assert with_reason <= set(names)
    return CodeMetrics(tuple(names), consts["DIMENSION_FUNCTION"], consts["DIMENSION_REASON"], frozenset(with_reason))


@pytest.fixture(scope="module")
def code() -> CodeMetrics:
    return parse_metrics_rs(template_support.METRICS_RS.read_text())


# --- What the template reads ---------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """One metric the dashboard or an alarm reads."""

    namespace: str
    name: str
    dimensions: tuple[tuple[str, str], ...]  # sorted (name, value)
    where: str

    @property
    def dimension_names(self) -> frozenset[str]:
        return frozenset(k for k, _ in self.dimensions)


def _search_references(expression: str, where: str) -> list[Reference]:
    """The metrics a SEARCH('{Namespace,Dim,...} terms', ...) expression reads:
    the exact dimension schema, MetricName="..." and Dim="value" terms."""
    found = []
    for query in re.findall(r"SEARCH\(\s*'((?:[^'\\]|\\.)*)'", expression):
        schema = re.match(r"\s*\{([^}]*)\}\s*(.*)$", query, re.S)
        assert schema, f"{where}: SEARCH without an exact schema {{Namespace,Dim,...}}: {query}"
        parts = [p.strip().strip('"') for p in schema.group(1).split(",")]
        namespace, dimension_names = parts[0], parts[1:]
        terms = dict(re.findall(r'(\w+)\s*=\s*"([^"]*)"', schema.group(2)))
        assert "MetricName" in terms, f'{where}: SEARCH without MetricName="...": {query}'
        name = terms.pop("MetricName")
        assert set(terms) <= set(dimension_names), f"{where}: SEARCH filters on {set(terms)} outside its schema"
        dims = tuple(sorted((d, terms.get(d, "*")) for d in dimension_names))
        found.append(Reference(namespace, name, dims, where))
    assert found or "SEARCH" not in expression, f"{where}: unparsed SEARCH expression {expression}"
    return found


def dashboard_references(widgets: list[dict]) -> list[Reference]:
    """Every metric of every metric widget: plain rows
    [Namespace, MetricName, Dim1, Value1, ..., {options}], with CloudWatch's
    "." meaning "as in the row above", and SEARCH expressions."""
    refs: list[Reference] = []
    for widget in widgets:
        if widget["type"] != "metric":
            continue
        title = widget["properties"].get("title", "?")
        previous: list[str] = []
        ids = {o["id"] for row in widget["properties"]["metrics"] for o in row if isinstance(o, dict) and "id" in o}
        for row in widget["properties"]["metrics"]:
            parts = [p for p in row if not isinstance(p, dict)]
            options = [p for p in row if isinstance(p, dict)]
            if not parts:
                (opts,) = options
                expression = opts.get("expression", "")
                assert expression, f"{title}: a metrics row with neither a metric nor an expression"
                if "SEARCH" not in expression:
                    # Metric math over the widget's other rows, read as rows.
                    check_math(expression, ids, title)
                    continue
                found = _search_references(expression, title)
                assert found, f"{title}: expression {expression!r} reads no metric this test understands"
                refs += found
                continue
            parts = [previous[i] if p == "." and i < len(previous) else p for i, p in enumerate(parts)]
            previous = parts
            assert len(parts) >= 2 and len(parts) % 2 == 0, f"{title}: malformed metric row {row}"
            namespace, name, rest = parts[0], parts[1], parts[2:]
            dims = tuple(sorted(zip(rest[0::2], rest[1::2])))
            refs.append(Reference(namespace, name, dims, title))
    return refs


# Metric math: lower-case identifiers are the ids of other metrics; upper-case
# words are its functions (IF, FILL, ...).
MATH_ID = re.compile(r"\b[a-z][A-Za-z0-9_]*\b")


def check_math(expression: str, ids: set[str], where: str) -> None:
    unknown = set(MATH_ID.findall(expression)) - ids
    assert not unknown, f"{where}: {expression!r} names {unknown}, which no metric of it has as id"


def metric_stat_reference(metric: dict, evaluator: Evaluator, where: str) -> Reference:
    """An alarm's metric: Namespace, MetricName, Dimensions (plain, or a MetricStat's Metric)."""
    dims = tuple(sorted((d["Name"], evaluator.eval(d["Value"])) for d in metric.get("Dimensions", [])))
    return Reference(evaluator.eval(metric["Namespace"]), metric["MetricName"], dims, where)


def alarm_references(template: dict, evaluator: Evaluator) -> list[Reference]:
    """Every metric every alarm reads, a metric-math alarm's included."""
    refs = []
    for logical_id, resource in template["Resources"].items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        props = resource["Properties"]
        if "Metrics" not in props:
            refs.append(metric_stat_reference(props, evaluator, logical_id))
            continue
        queries = props["Metrics"]
        ids = {q["Id"] for q in queries}
        returned = [q for q in queries if q.get("ReturnData", True)]
        assert len(returned) == 1, f"{logical_id}: an alarm evaluates one time series"
        for query in queries:
            if "MetricStat" in query:
                refs.append(metric_stat_reference(query["MetricStat"]["Metric"], evaluator, logical_id))
            else:
                check_math(query["Expression"], ids, logical_id)
    return refs


@dataclass(frozen=True)
class Share:
    """A metric-math time series: its expression with each id replaced by
    the metric (namespace, name, dimensions) it stands for, so two that read
    the same metrics the same way are equal whatever their ids."""

    expression: str

    @staticmethod
    def of(expression: str, metrics: dict[str, Reference]) -> Share:
        def name(match: re.Match) -> str:
            ref = metrics[match.group(0)]
            return f"<{ref.namespace}|{ref.name}|{ref.dimensions}>"

        return Share(MATH_ID.sub(name, expression.replace(" ", "")))


def alarm_shares(template: dict, evaluator: Evaluator) -> dict[str, tuple[Share, float]]:
    """Each metric-math alarm: what it evaluates, and its threshold."""
    out = {}
    for logical_id, resource in template["Resources"].items():
        props = resource["Properties"]
        if resource["Type"] != "AWS::CloudWatch::Alarm" or "Metrics" not in props:
            continue
        metrics = {
            q["Id"]: metric_stat_reference(q["MetricStat"]["Metric"], evaluator, logical_id)
            for q in props["Metrics"]
            if "MetricStat" in q
        }
        (returned,) = [q for q in props["Metrics"] if q.get("ReturnData", True)]
        out[logical_id] = (Share.of(returned["Expression"], metrics), float(evaluator.eval(props["Threshold"])))
    return out


def widget_shares(widgets: list[dict]) -> list[tuple[Share, dict[str, float], str]]:
    """Each metric-math series of the dashboard, with its widget's horizontal
    annotations (label: value) and title."""
    out = []
    for widget in widgets:
        if widget["type"] != "metric":
            continue
        props = widget["properties"]
        metrics = {}
        for row in props["metrics"]:
            parts = [p for p in row if not isinstance(p, dict)]
            options = [p for p in row if isinstance(p, dict)]
            if parts and options and "id" in options[0]:
                namespace, name, rest = parts[0], parts[1], parts[2:]
                dims = tuple(sorted(zip(rest[0::2], rest[1::2])))
                metrics[options[0]["id"]] = Reference(namespace, name, dims, props.get("title", "?"))
        annotations = {a["label"]: float(a["value"]) for a in props.get("annotations", {}).get("horizontal", [])}
        for row in props["metrics"]:
            expression = next((o.get("expression") for o in row if isinstance(o, dict)), None)
            if expression and "SEARCH" not in expression:
                out.append((Share.of(expression, metrics), annotations, props.get("title", "?")))
    return out


def evaluator_for(template: dict, defaults: dict[str, str], **overrides: str) -> Evaluator:
    return Evaluator(template, {**defaults, **overrides, **STUBS})


def dashboard_body(template: dict, evaluator: Evaluator) -> dict:
    (dashboard,) = [r for r in template["Resources"].values() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    text = evaluator.eval(dashboard["Properties"]["DashboardBody"])
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:  # pragma: no cover - the message is the point
        line = text.splitlines()[e.lineno - 1] if e.lineno <= len(text.splitlines()) else ""
        raise AssertionError(f"DashboardBody is not JSON after substitution: {e}\n{line}") from e


@pytest.fixture(scope="module")
def evaluator(template, defaults) -> Evaluator:
    return evaluator_for(template, defaults)


@pytest.fixture(scope="module")
def dashboard(template, evaluator) -> list[Reference]:
    return dashboard_references(dashboard_body(template, evaluator)["widgets"])


@pytest.fixture(scope="module")
def alarms(template, evaluator) -> list[Reference]:
    return alarm_references(template, evaluator)


# --- The checks ------------------------------------------------------------------


def test_the_parser_reads_the_code_metrics(code):
    """A sanity check of the parser on what docs/operations.md ("Observability") documents."""
    assert "SubmissionsFailed" in code.names and "SubmissionsRejected" in code.names
    assert code.function_dimension == "FunctionName"
    assert code.reason_dimension == "Reason"
    assert code.by_reason == {"SubmissionsRejected", "EventsDropped"}


def test_function_and_alarms_use_one_namespace_parameter(resources):
    """The function is told its namespace by the stack (not left to its
    default), from the same parameter the alarms and dashboard read."""
    env = function(resources)["Properties"]["Environment"]["Variables"]
    assert env["METRICS_NAMESPACE"] == {"Ref": "MetricsNamespace"}
    for logical_id, resource in resources.items():
        if resource["Type"] == "AWS::CloudWatch::Alarm":
            props = resource["Properties"]
            metrics = [q["MetricStat"]["Metric"] for q in props.get("Metrics", []) if "MetricStat" in q] or [props]
            for metric in metrics:
                ns = metric["Namespace"]
                assert ns == {"Ref": "MetricsNamespace"} or (isinstance(ns, str) and ns.startswith("AWS/")), logical_id


def test_every_namespace_read_is_the_functions_or_an_aws_one(dashboard, alarms):
    unknown = {
        (r.namespace, r.where)
        for r in dashboard + alarms
        if r.namespace != NAMESPACE and r.namespace not in AWS_NAMESPACES
    }
    assert not unknown, f"metrics read from a namespace that is neither MetricsNamespace nor AWS/*: {unknown}"


def check_function_metric(ref: Reference, code: CodeMetrics) -> list[str]:
    problems = []
    if ref.name not in code.names:
        problems.append(f"{ref.where}: {ref.name} is not a metric the function emits ({', '.join(code.names)})")
        return problems
    allowed = [frozenset({code.function_dimension})]
    if ref.name in code.by_reason:
        allowed.append(frozenset({code.function_dimension, code.reason_dimension}))
    if ref.dimension_names not in allowed:
        problems.append(
            f"{ref.where}: {ref.name} by {sorted(ref.dimension_names)}; the function emits it by "
            + " or ".join(str(sorted(a)) for a in allowed)
        )
    function_name = dict(ref.dimensions).get(code.function_dimension)
    if function_name != FUNCTION:
        problems.append(f"{ref.where}: {ref.name} with {code.function_dimension}={function_name!r}, not this function")
    return problems


def test_every_function_metric_on_the_dashboard_is_emitted_by_the_code(dashboard, code):
    problems = [p for r in dashboard if r.namespace == NAMESPACE for p in check_function_metric(r, code)]
    assert not problems, "\n".join(problems)


def test_every_alarm_on_a_function_metric_is_emitted_by_the_code(alarms, code):
    problems = [p for r in alarms if r.namespace == NAMESPACE for p in check_function_metric(r, code)]
    assert not problems, "\n".join(problems)


def test_every_metric_the_code_emits_is_on_the_dashboard(dashboard, code):
    shown = {(r.name, r.dimension_names) for r in dashboard if r.namespace == NAMESPACE}
    by_function = frozenset({code.function_dimension})
    by_reason = frozenset({code.function_dimension, code.reason_dimension})
    missing = [f"{name} by {code.function_dimension}" for name in code.names if (name, by_function) not in shown]
    missing += [
        f"{name} by {code.function_dimension} and {code.reason_dimension}"
        for name in sorted(code.by_reason)
        if (name, by_reason) not in shown
    ]
    assert not missing, f"metrics the function emits that the dashboard does not show: {missing}"


def test_the_failed_submissions_alarm_reads_the_code_metric(alarms, code):
    (failed,) = [r for r in alarms if r.where == "SubmissionsFailedAlarm"]
    assert failed.namespace == NAMESPACE
    assert failed.name == "SubmissionsFailed" and failed.name in code.names
    assert failed.dimensions == ((code.function_dimension, FUNCTION),)


def test_every_share_an_alarm_watches_is_graphed_with_its_threshold(template, evaluator):
    """Issue 19, item 4: an alarm on a share (the re-send rate, the share of
    events dropped) is on the dashboard as the same expression over the same
    metrics, with a horizontal line at its threshold labelled with the
    alarm's name, so what fires can be seen."""
    graphed = widget_shares(dashboard_body(template, evaluator)["widgets"])
    shares = alarm_shares(template, evaluator)
    assert {"SubmissionsResentAlarm", "EventsDroppedAlarm"} <= set(shares)
    for alarm, (share, threshold) in shares.items():
        widgets = [(annotations, title) for s, annotations, title in graphed if s == share]
        assert widgets, f"{alarm}: no widget graphs {share.expression}"
        assert any(annotations.get(alarm) == threshold for annotations, _ in widgets), (
            f"{alarm}: no widget with it shows the threshold {threshold} labelled {alarm}"
        )


# The metrics that show a version publishing only part of what it was given,
# which a canary must roll back on: the whole-failure signals do not see it.
PARTIAL_PUBLISHING = {
    # Not fully published and handed back to SQS (batchItemFailures).
    "SubmissionsFailed": "reported failed",
    # Published part-way and sent back with its progress: acknowledged, so
    # not a failure; the copy resets SentTimestamp and the receive count, so
    # neither the queue's age nor the dead-letter queue shows it going round.
    "SubmissionsResent": "sent back part-way",
    # Published without the events taken for invalid: acknowledged whole.
    "EventsDropped": "published without some events",
}


def canary_alarms(template: dict) -> list[str]:
    props = function(template["Resources"])["Properties"]
    return [a["Ref"] for a in props["DeploymentPreference"]["Alarms"]]


def test_the_canary_rolls_back_on_every_metric_that_reveals_partial_publishing(template, evaluator, code):
    """Issue 19, item 4: CodeDeploy rolls back on the alarms of
    DeploymentPreference. For each metric that shows partial publishing, an
    alarm of that list reads it (in this function's namespace, for this
    function), so a canary that turns failures into re-sends, or drops
    events, is rolled back like one that fails."""
    assert set(PARTIAL_PUBLISHING) <= set(code.names), "a metric of PARTIAL_PUBLISHING is no longer emitted"
    canary = canary_alarms(template)
    read_by = {}
    for ref in alarm_references(template, evaluator):
        if ref.namespace == NAMESPACE and dict(ref.dimensions).get(code.function_dimension) == FUNCTION:
            read_by.setdefault(ref.name, set()).add(ref.where)
    missing = [f"{m} ({why})" for m, why in PARTIAL_PUBLISHING.items() if not read_by.get(m, set()) & set(canary)]
    assert not missing, f"no rollback alarm reads: {missing}; the canary's alarms are {canary}"
    for name in canary:
        assert template["Resources"][name]["Type"] == "AWS::CloudWatch::Alarm", name


def test_the_canary_alarms_reach_codedeploy(template):
    """The list as CloudFormation deploys it: the SAM-transformed deployment
    group rolls back on exactly these alarms."""
    out = template_support.sam_transform(template)
    (group,) = [r for r in out["Resources"].values() if r["Type"] == "AWS::CodeDeploy::DeploymentGroup"]
    alarms = group["Properties"]["AlarmConfiguration"]["Alarms"]
    assert [a["Name"] for a in alarms] == [{"Ref": a} for a in canary_alarms(template)]


OPERATIONS = template_support.ROOT / "docs" / "operations.md"


def test_docs_say_what_each_alarm_means_and_what_to_look_at_first(resources):
    """Issue 19, item 4: docs/operations.md has, for every alarm of the
    template, a heading "#### `AlarmName`" followed by what it means and a
    numbered list of the first three things to look at."""
    text = OPERATIONS.read_text()
    sections = dict(re.findall(r"^#### `(\w+)`\n(.*?)(?=^#|\Z)", text, re.M | re.S))
    problems = []
    for name, resource in resources.items():
        if resource["Type"] != "AWS::CloudWatch::Alarm":
            continue
        if name not in sections:
            problems.append(f"{name}: no '#### `{name}`' section")
            continue
        steps = re.findall(r"^\d+\. ", sections[name], re.M)
        if len(steps) != 3:
            problems.append(f"{name}: {len(steps)} numbered things to look at first, not 3")
    assert not problems, "\n".join(problems)


def test_aws_metrics_name_this_stacks_resources(dashboard, alarms):
    problems = []
    for ref in dashboard + alarms:
        if ref.namespace in AWS_NAMESPACES:
            dimension, values = AWS_NAMESPACES[ref.namespace]
            if dict(ref.dimensions).get(dimension) not in values or len(ref.dimensions) != 1:
                problems.append(f"{ref.where}: {ref.namespace} {ref.name} {ref.dimensions}")
    assert not problems, "\n".join(problems)


def test_the_dashboard_shows_queue_dlq_function_and_stream_health(dashboard):
    shown = {
        (r.namespace, r.name, dict(r.dimensions).get(AWS_NAMESPACES.get(r.namespace, ("",))[0])) for r in dashboard
    }
    for expected in [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", QUEUE),
        ("AWS/SQS", "ApproximateAgeOfOldestMessage", QUEUE),
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", DLQ),
        ("AWS/Lambda", "Duration", FUNCTION),
        ("AWS/Lambda", "Throttles", FUNCTION),
        ("AWS/Lambda", "Errors", FUNCTION),
        ("AWS/Lambda", "ConcurrentExecutions", FUNCTION),
        ("AWS/Kinesis", "IncomingRecords", STREAM),
        ("AWS/Kinesis", "WriteProvisionedThroughputExceeded", STREAM),
    ]:
        assert expected in shown, expected


@pytest.mark.parametrize(
    "overrides",
    [
        {"ExistingQueueArn": "arn:aws:sqs:eu-west-1:123456789012:sensor-submissions"},
        {"ExistingStreamArn": "arn:aws:kinesis:eu-west-1:123456789012:stream/edr-events"},
        {"MetricsNamespace": "Other"},
    ],
)
def test_the_dashboard_is_valid_json_with_existing_resources(template, defaults, overrides):
    evaluator = evaluator_for(template, defaults)
    evaluator.values.update(overrides)
    body = dashboard_body(template, evaluator)
    refs = dashboard_references(body["widgets"])
    if "ExistingQueueArn" in overrides:
        assert ("AWS/SQS", "ApproximateAgeOfOldestMessage", (("QueueName", "sensor-submissions"),)) in {
            (r.namespace, r.name, r.dimensions) for r in refs
        }
        assert DLQ not in json.dumps(body), "no dead-letter queue of this stack to show"
    if "ExistingStreamArn" in overrides:
        assert ("StreamName", "edr-events") in {d for r in refs for d in r.dimensions}
    if "MetricsNamespace" in overrides:
        assert {r.namespace for r in refs} - set(AWS_NAMESPACES) == {"Other"}


def test_the_dashboard_is_optional(template, resources, parameters):
    (name,) = [k for k, r in resources.items() if r["Type"] == "AWS::CloudWatch::Dashboard"]
    assert resources[name]["Condition"] == "HasDashboard"
    assert template["Conditions"]["HasDashboard"] == {"Fn::Equals": [{"Ref": "CreateDashboard"}, "true"]}
    assert parameters["CreateDashboard"]["AllowedValues"] == ["true", "false"]


def test_widgets_fit_the_grid_without_overlapping(template, evaluator):
    taken: dict[tuple[int, int], str] = {}
    for widget in dashboard_body(template, evaluator)["widgets"]:
        x, y, w, h = (widget[k] for k in ("x", "y", "width", "height"))
        assert 0 <= x and x + w <= 24, widget
        for cell in ((cx, cy) for cx in range(x, x + w) for cy in range(y, y + h)):
            assert cell not in taken, f"{widget['properties'].get('title')} overlaps {taken[cell]}"
            taken[cell] = widget["properties"].get("title", widget["type"])


# --- The parser itself, on variants of the source --------------------------------


SAMPLE = """
pub const A: &str = "Alpha";
pub const B: &str = "Beta"; // trailing comment
pub(crate) const C: &'static str = "Gamma";
/// Every metric name.
pub const METRIC_NAMES: [&str; 3] = [
    A,
    B, // commented
    C,
];
pub const DIMENSION_FUNCTION: &str = "FunctionName";
pub const DIMENSION_REASON: &str = "Reason";
fn f() {
    definitions.push(json!({"Name": C, "Unit": "Milliseconds"}));
    let t = document(namespace, ts, &[DIMENSION_FUNCTION], definitions);
    let definitions = vec![json!({"Name": B, "Unit": "Count"})];
    let d = document(
        namespace,
        ts,
        &[DIMENSION_FUNCTION, DIMENSION_REASON],
        definitions,
    );
}
"""


def test_parser_handles_formatting_variants():
    parsed = parse_metrics_rs(SAMPLE)
    assert parsed.names == ("Alpha", "Beta", "Gamma")
    assert parsed.by_reason == {"Beta"}


def test_parser_reads_metric_names_mapped_onto_reasons():
    """One loop builds the per-reason documents of several metrics, the name
    a variable: the constants are read from the `(CONST, ...)` tuples."""
    source = SAMPLE.replace(
        'let definitions = vec![json!({"Name": B, "Unit": "Count"})];',
        "let by_reason = (x.iter().map(|r| (A, r))).chain(y.iter().map(|r| (B, r)));\n"
        "    for (name, (reason, count)) in by_reason {\n"
        '    let definitions = vec![json!({"Name": name, "Unit": "Count"})];',
    )
    assert source != SAMPLE
    parsed = parse_metrics_rs(source)
    assert parsed.by_reason == {"Alpha", "Beta"}
    # A tuple of something else than a metric constant names no metric.
    assert parse_metrics_rs(source.replace("(A, r)", "(DIMENSION_REASON, r)")).by_reason == {"Beta"}


@pytest.mark.parametrize(
    "mutation, message",
    [
        (lambda s: s.replace("[&str; 3]", "[&str; 4]"), "declared 4"),
        (lambda s: s.replace("    C,\n];", "    D,\n];"), "not a `pub const D"),
        (lambda s: s.replace("METRIC_NAMES", "ALL_METRICS"), "METRIC_NAMES"),
        (lambda s: s.replace(", DIMENSION_REASON]", "]"), "DIMENSION_REASON"),
        # A metric emitted by name but missing from METRIC_NAMES.
        (
            lambda s: s.replace(
                'pub const B: &str = "Beta";', 'pub const B: &str = "Beta";\npub const D: &str = "Delta";'
            ).replace('"Name": C,', '"Name": D,'),
            "emits D",
        ),
    ],
)
def test_parser_fails_loudly_on_what_it_does_not_understand(mutation, message):
    with pytest.raises(AssertionError, match=re.escape(message)):
        parse_metrics_rs(mutation(SAMPLE))


def test_search_expressions_are_parsed_with_their_schema():
    (ref,) = _search_references(
        'SEARCH(\'{"My/Ns",FunctionName,Reason} MetricName="SubmissionsRejected" FunctionName="fn"\', \'Sum\', 60)', "w"
    )
    assert ref == Reference("My/Ns", "SubmissionsRejected", (("FunctionName", "fn"), ("Reason", "*")), "w")
