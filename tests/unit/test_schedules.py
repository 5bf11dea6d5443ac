"""The ready-made schedules call ``bakeoff retrain`` as it is, and say when."""

from __future__ import annotations

import configparser
import json
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipelines import cli, retrain
from tests.conftest import ROOT

SCHEDULES = ROOT / "schedules"
WORKFLOW = ROOT / ".github" / "workflows" / "retrain.yml"
CRON_FIELD = re.compile(r"^(\*|\d+(-\d+)?)(/\d+)?(,(\d+(-\d+)?))*$")
CRON_RANGES = ((0, 59), (0, 23), (1, 31), (1, 12), (0, 7))


def retrain_arguments(command: str) -> list[str]:
    """The arguments after ``bakeoff retrain`` in a shell command line."""
    words = shlex.split(command)
    start = next(
        i
        for i, word in enumerate(words[:-1])
        if Path(word).name == "bakeoff" and words[i + 1] == "retrain"
    )
    end = next(
        (i for i, word in enumerate(words) if i > start and word in (">>", ">", "&&", "|")),
        len(words),
    )
    return words[start + 1 : end]


def check_parses(arguments: list[str]) -> None:
    args = cli._parser(arguments).parse_args(arguments)
    assert args.handler is retrain.run


def check_cron(expression: str) -> None:
    fields = expression.split()
    assert len(fields) == 5, expression
    for field, (low, high) in zip(fields, CRON_RANGES, strict=True):
        assert CRON_FIELD.match(field), field
        assert all(low <= int(number) <= high for number in re.findall(r"\d+", field.split("/")[0]))


def unit(path: Path) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def test_the_cron_line_runs_a_retrain_in_the_checkout():
    lines = [
        line
        for line in (SCHEDULES / "cron" / "bakeoff-retrain").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    [line] = lines
    fields = line.split(maxsplit=5)
    check_cron(" ".join(fields[:5]))
    command = fields[5]
    assert command.startswith("cd ") and " && .venv/bin/bakeoff retrain" in command
    check_parses(retrain_arguments(command))


def test_the_systemd_pair_runs_a_retrain_and_a_refusal_is_not_a_failure():
    service = unit(SCHEDULES / "systemd" / "bakeoff-retrain.service")["Service"]
    timer = unit(SCHEDULES / "systemd" / "bakeoff-retrain.timer")
    assert service["Type"] == "oneshot"
    assert service["ExecStart"] == service["WorkingDirectory"] + "/.venv/bin/bakeoff retrain"
    check_parses(retrain_arguments(service["ExecStart"]))
    assert str(retrain.LOCKED_STATUS) in service["SuccessExitStatus"].split()
    assert timer["Timer"]["Unit"] == "bakeoff-retrain.service"
    assert timer["Timer"]["Persistent"] == "true"
    assert timer["Install"]["WantedBy"] == "timers.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_units_pointed_at_this_checkout(tmp_path):
    # The units name /srv/bakeoff; pointed at this checkout, systemd checks them
    # as it would load them, down to the command being executable.
    for name in ("bakeoff-retrain.service", "bakeoff-retrain.timer"):
        text = (SCHEDULES / "systemd" / name).read_text()
        text = text.replace("/srv/bakeoff", str(ROOT)).replace("User=bakeoff", "User=root")
        (tmp_path / name).write_text(text)
    units = [str(tmp_path / "bakeoff-retrain.service"), str(tmp_path / "bakeoff-retrain.timer")]
    verified = subprocess.run(
        ["systemd-analyze", "verify", *units], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    calendar = unit(tmp_path / "bakeoff-retrain.timer")["Timer"]["OnCalendar"]
    parsed = subprocess.run(
        ["systemd-analyze", "calendar", calendar], capture_output=True, text=True, check=False
    )
    assert parsed.returncode == 0 and "03:17:00" in parsed.stdout, parsed.stderr


def test_the_workflow_retrains_on_a_schedule_and_keeps_the_lock_and_history():
    workflow = yaml.safe_load(WORKFLOW.read_text())
    triggers = workflow[True]  # YAML 1.1 reads the key `on` as true
    [schedule] = triggers["schedule"]
    check_cron(schedule["cron"])
    assert "workflow_dispatch" in triggers
    assert workflow["concurrency"]["cancel-in-progress"] is False
    steps = workflow["jobs"]["retrain"]["steps"]
    commands = [step.get("run", "") for step in steps]
    [retraining] = [c for c in commands if c.startswith(".venv/bin/bakeoff retrain")]
    check_parses(retrain_arguments(retraining))
    [keeping] = [step for step in steps if "git push" in step.get("run", "")]
    added = next(line for line in keeping["run"].splitlines() if "git add" in line).split()
    history = Path(cli._parser(["retrain"]).parse_args(["retrain"]).history)
    assert "dvc.lock" in added
    assert any(history.is_relative_to(path) for path in added[2:]), added
    assert keeping["if"] == "${{ always() }}", "a failed retrain's history line must be kept too"


def test_the_workflow_names_its_commit_after_the_last_history_line():
    keeping = next(
        step["run"]
        for step in yaml.safe_load(WORKFLOW.read_text())["jobs"]["retrain"]["steps"]
        if "git push" in step.get("run", "")
    )
    summary = re.search(r"\$\(tail -n 1 (\S+) \| \.venv/bin/python -c '([^']+)'\)", keeping)
    assert summary is not None
    assert summary.group(1) == cli._parser(["retrain"]).parse_args(["retrain"]).history
    for entry, expected in (
        ({"outcome": "retrained", "version": "3", "alias": "champion"}, "retrained 3 champion"),
        ({"outcome": "no_new_data"}, "no_new_data"),
    ):
        result = subprocess.run(
            [sys.executable, "-c", summary.group(2)],
            input=json.dumps(entry),
            capture_output=True,
            text=True,
            check=True,
        )
        assert result.stdout.split() == expected.split()
