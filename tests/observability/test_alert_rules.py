"""The alert rules of deploy/prometheus: valid, documented, and each tested by promtool (fires, and not)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from conftest import require

REPO = Path(__file__).resolve().parents[2]
RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
TESTS = REPO / "deploy" / "prometheus" / "tests"
RUNBOOKS = REPO / "deploy" / "prometheus" / "runbooks.md"


def alerts() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [rule for group in doc["groups"] for rule in group["rules"] if "alert" in rule]


def promtool() -> str:
    path = shutil.which("promtool")
    require(path is not None, "promtool not installed (Debian package prometheus)")
    assert path is not None
    return path


def test_every_alert_has_a_severity_and_its_annotations() -> None:
    runbooks = RUNBOOKS.read_text().lower()
    names = [str(rule["alert"]) for rule in alerts()]
    assert len(names) == len(set(names)) >= 8
    for rule in alerts():
        labels, notes = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in ("critical", "warning"), rule["alert"]
        assert isinstance(notes, dict) and {"summary", "description", "runbook_url"} <= set(notes), rule[
            "alert"
        ]
        anchor = str(notes["runbook_url"]).split("#", 1)[1]
        assert f"## {anchor}" in runbooks, f"no runbook section for {anchor}"


def test_the_rules_are_valid() -> None:
    proc = subprocess.run([promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_each_alert_has_its_own_test_file_with_a_firing_and_a_quiet_case() -> None:
    tested: dict[str, str] = {}
    for path in sorted(TESTS.glob("*.yml")):
        fired, quiet = set(), set()
        for test in yaml.safe_load(path.read_text())["tests"]:
            for case in test["alert_rule_test"]:
                (fired if case["exp_alerts"] else quiet).add(case["alertname"])
        main = fired - {"HqErrorBudgetBurnFast"} if path.stem == "error_budget_slow" else fired
        assert len(main) == 1, f"{path.name} fires {sorted(fired)}: one alert a file"
        name = main.pop()
        assert name in quiet, f"{path.name} has no case where {name} stays quiet"
        assert name not in tested, f"{name} is tested in {tested.get(name)} and {path.name}"
        tested[name] = path.name
    assert set(tested) == {str(rule["alert"]) for rule in alerts()}


@pytest.mark.parametrize("path", sorted(TESTS.glob("*.yml")), ids=lambda p: p.stem)
def test_promtool_rule_tests_pass(path: Path) -> None:
    proc = subprocess.run([promtool(), "test", "rules", path.name], capture_output=True, text=True, cwd=TESTS)
    assert proc.returncode == 0, proc.stdout + proc.stderr
