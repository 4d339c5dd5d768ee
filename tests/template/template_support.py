"""Helpers of the template tests. The template is read with cfn-lint's own
decoder and transformed with SAM's own transform (samtranslator, the version
sam and cfn-lint run). What is left here is only what neither does: evaluating
conditions, rules and intrinsic functions for one given set of parameter
values, and checking a parameter value against its constraints, which is what
CloudFormation does at deploy time (each piece says why below)."""

from __future__ import annotations

import re
from pathlib import Path

from cfnlint.decode import cfn_yaml

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"
SAMCONFIG = ROOT / "samconfig.toml"
DEPLOY_MK = ROOT / "mk" / "deploy.mk"
# The documentation the tests check against the code: wherever a text lives.
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# The metric names and dimensions the function emits (its EMF contract).
METRICS_RS = ROOT / "src" / "metrics.rs"


def docs_text() -> str:
    """README.md and every docs/*.md, one after the other."""
    return "\n".join(path.read_text() for path in DOCS)


def load_template(text: str) -> dict:
    """The template as cfn-lint reads it: short tags (`!Ref X`, `!GetAtt A.B`,
    `!Sub ...`) become their long form ({"Ref": "X"}, {"Fn::GetAtt": ["A", "B"]}, ...)."""
    return cfn_yaml.loads(text)


def parse_overrides(value) -> dict[str, str]:
    """samconfig's parameter_overrides ("K=V K2=V2", or a list) as a dict."""
    if isinstance(value, list):
        value = " ".join(value)
    pairs = re.findall(r'(\w+)=("[^"]*"|\S*)', value)
    return {k: v.strip('"') for k, v in pairs}


def function(resources: dict) -> dict:
    (fn,) = [r for r in resources.values() if r["Type"] == "AWS::Serverless::Function"]
    return fn


# --- Intrinsic functions ---------------------------------------------------
#
# Why an evaluator of our own: the tests ask what the stack does for one set of
# parameter values (a condition is true, a rule fails, an output is this ARN).
# samtranslator resolves only Ref and the parameters inside Fn::Sub (it keeps
# the Fn::Sub, leaves ${!Literal} and Fn::Sub's variable map alone, and
# evaluates no condition function); cfn-lint reasons over every value a
# parameter may take (to find a template that can fail), never one given set.
# CloudFormation alone evaluates them, at deploy time, so this does it the
# same way for the functions template.yaml uses, and raises on any other.


class Evaluator:
    """Evaluates the intrinsic functions of conditions, rules and simple
    values for given parameter values (strings, as CloudFormation has them)."""

    def __init__(self, template: dict, values: dict[str, str], pseudo: dict[str, str] | None = None):
        self.template = template
        self.values = dict(values)
        self.values.update(
            pseudo
            or {
                "AWS::Region": "eu-west-1",
                "AWS::AccountId": "123456789012",
                "AWS::Partition": "aws",
                "AWS::URLSuffix": "amazonaws.com",
                "AWS::StackName": "edr",
            }
        )
        self._conditions: dict[str, bool] = {}

    def condition(self, name: str) -> bool:
        if name not in self._conditions:
            self._conditions[name] = bool(self.eval(self.template["Conditions"][name]))
        return self._conditions[name]

    def eval(self, node):
        if isinstance(node, list):
            return [self.eval(n) for n in node]
        if not isinstance(node, dict):
            return node if isinstance(node, (bool, type(None))) else str(node)
        if len(node) != 1:
            return {k: self.eval(v) for k, v in node.items()}
        ((fn, arg),) = node.items()
        if fn == "Ref":
            if arg == "AWS::NoValue":
                return None
            if arg not in self.values:
                raise KeyError(f"Ref {arg}: not a parameter, pseudo parameter or stubbed resource")
            return self.values[arg]
        if fn == "Fn::GetAtt":
            # Attributes of resources: whatever the test put in `values`.
            return self.values[f"{arg[0]}.{arg[1]}"]
        if fn == "Condition":
            return self.condition(arg)
        if fn == "Fn::Equals":
            a, b = self.eval(arg)
            return a == b
        if fn == "Fn::Not":
            (a,) = arg
            return not self.eval(a)
        if fn == "Fn::And":
            return all(self.eval(a) for a in arg)
        if fn == "Fn::Or":
            return any(self.eval(a) for a in arg)
        if fn == "Fn::Contains":
            haystack, needle = self.eval(arg)
            return needle in haystack
        if fn == "Fn::If":
            name, yes, no = arg
            return self.eval(yes if self.condition(name) else no)
        if fn == "Fn::Select":
            index, items = arg
            items = self.eval(items)
            return items[int(self.eval(index))]
        if fn == "Fn::Split":
            sep, value = arg
            return self.eval(value).split(sep)
        if fn == "Fn::Join":
            sep, items = arg
            return sep.join(self.eval(items))
        if fn == "Fn::Sub":
            if isinstance(arg, list):
                text, extra = arg
                names = {**self.values, **{k: self.eval(v) for k, v in extra.items()}}
            else:
                text, names = arg, self.values
            # ${!Literal} is the escape for a literal ${Literal}.
            return re.sub(
                r"\$\{([^}]+)\}",
                lambda m: "${" + m.group(1)[1:] + "}" if m.group(1).startswith("!") else str(names[m.group(1)]),
                text,
            )
        raise NotImplementedError(fn)

    def rule_failures(self) -> list[str]:
        """AssertDescriptions of the Rules assertions these values break.
        (CloudFormation checks Rules against the values of a deployment;
        cfn-lint checks only that they are well formed.)"""
        failed = []
        for rule in self.template.get("Rules", {}).values():
            if "RuleCondition" in rule and not self.eval(rule["RuleCondition"]):
                continue
            for assertion in rule["Assertions"]:
                if not self.eval(assertion["Assert"]):
                    failed.append(assertion["AssertDescription"])
        return failed


def satisfies_constraints(param: dict, value: str) -> bool:
    """Whether CloudFormation would accept `value` for this parameter.
    (CloudFormation checks a deployment's values against AllowedValues,
    AllowedPattern and Min/MaxValue; cfn-lint checks only the defaults.)"""
    if "AllowedValues" in param and value not in [str(v) for v in param["AllowedValues"]]:
        return False
    if "AllowedPattern" in param and not re.fullmatch(param["AllowedPattern"], value):
        return False
    if param["Type"] == "Number":
        try:
            number = float(value)
        except ValueError:
            return False
        if "MinValue" in param and number < float(param["MinValue"]):
            return False
        if "MaxValue" in param and number > float(param["MaxValue"]):
            return False
    return True


# --- The SAM transform -------------------------------------------------------


def sam_transform(template: dict, parameter_values: dict[str, str] | None = None) -> dict:
    """The template as CloudFormation deploys it: after the SAM transform
    (aws-sam-translator, the version sam and cfn-lint run), for the given
    parameter values (the transform resolves a few, e.g. DeploymentPreference
    Type). Managed policies are not looked up (no AWS account here)."""
    import copy
    import os

    from samtranslator.translator.transform import transform

    os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
    raw = copy.deepcopy(template)
    function(raw["Resources"])["Properties"]["CodeUri"] = "s3://bucket/key"

    class NoManagedPolicies:
        def load(self):
            return {}

    return transform(raw, dict(parameter_values or {}), NoManagedPolicies())
