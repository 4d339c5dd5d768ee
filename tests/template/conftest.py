"""Fixtures of the template tests: template.yaml and samconfig.toml as read."""

from __future__ import annotations

import tomllib

import pytest

from template_support import SAMCONFIG, TEMPLATE, load_template


@pytest.fixture(scope="session")
def template() -> dict:
    return load_template(TEMPLATE.read_text())


@pytest.fixture(scope="session")
def resources(template) -> dict:
    return template["Resources"]


@pytest.fixture(scope="session")
def parameters(template) -> dict:
    return template["Parameters"]


@pytest.fixture(scope="session")
def defaults(parameters) -> dict[str, str]:
    """Parameter values as CloudFormation sees them: strings."""
    return {name: str(p.get("Default", "")) for name, p in parameters.items()}


@pytest.fixture(scope="session")
def samconfig() -> dict:
    return tomllib.loads(SAMCONFIG.read_text())
