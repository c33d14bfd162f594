"""No dead ends: bare revcli, runs list, the nearest command, one leak message per finding,
--gap like --since, fetch names its workspace."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bare_revcli_prints_the_help_and_exits_0(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", "from revcli._entry import main; main()"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "Usage:" in done.stdout and "COMMAND" in done.stdout and "train" in done.stdout


def test_an_unknown_command_suggests_the_nearest(invoke) -> None:
    result = invoke("trian")
    assert result.exit_code == 2 and "Did you mean 'train'?" in result.output
    result = invoke("runs", "lst")
    assert result.exit_code == 2 and "Did you mean 'list'?" in result.output


def test_runs_list_is_the_view_of_compare_runs(invoke, small_settings) -> None:
    from revcli import train

    run = train.train(small_settings.replace(estimator="mean"), plots=False)
    listed = invoke("runs", "list", "--json")
    compared = invoke("compare", "runs", "--json")
    assert listed.exit_code == 0, listed.stderr
    rows = json.loads(listed.stdout)["runs"]
    assert [r["run_id"] for r in rows] == [run.run_id]
    assert rows == json.loads(compared.stdout)["runs"]


def _leak_lines(stderr: str) -> list[str]:
    return [ln for ln in stderr.splitlines() if "engagement_depth" in ln]


def test_one_leak_message_per_finding(invoke, small_settings, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one warning, one line
    spared = invoke("train", "--no-plots", "--estimator", "mean")
    assert spared.exit_code == 0, spared.stderr
    (line,) = _leak_lines(spared.stderr)
    assert line.startswith("Warning: possible target leak: 'engagement_depth'")
    assert "cannot inflate converting_only" in line

    leaky = invoke("train", "--no-plots", "--estimator", "mean", "--strategy", "all")
    assert leaky.exit_code == 0, leaky.stderr
    (line,) = _leak_lines(leaky.stderr)
    assert "the scores of all rest on it" in line and "--drop-feature engagement_depth" in line
    assert "possible" not in line and "cannot inflate" not in line


def test_gap_takes_minutes_like_since(invoke, small_settings) -> None:
    result = invoke("train", "--no-plots", "--estimator", "mean", "--split", "time",
                    "--gap", "90m", "--json")
    assert result.exit_code == 0, result.stderr
    assert invoke("compare", "runs", "--since", "90m").exit_code == 0
    bad = invoke("train", "--no-plots", "--split", "time", "--gap", "5")
    assert bad.exit_code == 2 and "--gap '5': give a duration such as 90m" in bad.stderr


def test_fetch_names_the_workspace(invoke, isolated: Path) -> None:
    result = invoke("fetch", "--demo", "--rows", "2000")
    assert result.exit_code == 0, result.stderr
    assert f"in the workspace {isolated.resolve()}" in result.stdout
    data = json.loads(invoke("fetch", "--demo", "--rows", "2000", "--json").stdout)
    assert data["workspace"] == str(isolated.resolve())
