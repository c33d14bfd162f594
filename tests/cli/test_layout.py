"""One layout rule for every output (issue 20): at COLUMNS=80 and 120 no line of train,
evaluate, tune, predict, doctor, config, datasets list or push is wider than the terminal --
which is where a terminal would break it inside a word -- except a single word longer than
the width (a path, a URL), which stays whole on a line of its own."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from rich.cells import cell_len
from typer.testing import CliRunner

from revcli.cli import app


def _run(width: int, *args: str):
    return CliRunner().invoke(app, list(args), env={"COLUMNS": str(width)})


def broken_lines(text: str, width: int) -> list[str]:
    """Lines a terminal of ``width`` would break inside a word. ``Error:`` lines are one line
    in a pipe or log (what a script reads) and wrap only at a terminal: not counted here."""
    return [line for line in text.splitlines()
            if cell_len(line) > width and len(line.split()) > 1
            and not line.startswith("Error:")]


def test_broken_lines_finds_a_long_line_and_spares_a_long_word() -> None:
    assert broken_lines("a b\n" + "x" * 90 + "\n" + "y " * 50, 80) == ["y " * 50]


@pytest.mark.parametrize("width", [80, 120])
def test_every_command_fits_the_terminal(width: int, small_settings, tmp_path: Path,
                                         small_demo, monkeypatch) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    space = tmp_path / "spaces.toml"
    space.write_text('[ridge]\nalpha = { type = "float", low = 0.1, high = 100.0, log = true }\n')
    data = tmp_path / "rows.parquet"
    small_demo.head(500).to_parquet(data, index=False)
    commands = {
        "train": ["train", "--estimator", "ridge", "--no-plots"],
        "evaluate": ["evaluate", "--run", "latest", "--no-plots", "--no-track"],
        "predict": ["predict", "--run", "latest", "--data", str(data), "--out",
                    str(tmp_path / "scored.parquet")],
        "tune": ["tune", "--estimator", "ridge", "--space", str(space), "-n", "2", "-j", "1",
                 "--no-plots", "--folds", "2"],
        "doctor": ["doctor"],
        "config": ["config"],
        "datasets list": ["datasets", "list"],
        "compare runs": ["compare", "runs"],
        "push": ["push", "--run", "latest", "--promote", "--endpoint-url",
                 "http://127.0.0.1:9"],
    }
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "revcli-test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "revcli-test-secret")
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    for name, args in commands.items():
        result = _run(width, *args)
        assert result.exit_code in (0, 2), (name, result.output)
        text = result.stdout + result.stderr
        assert "Traceback" not in text, name
        assert broken_lines(text, width) == [], f"{name} at {width}:\n{text}"
        if name == "push":
            assert result.exit_code == 2 and "127.0.0.1:9" in result.stderr
        if name == "config":
            # values whole, never cut inside (REVCLI_TRACKING_UR / I)
            assert "s3://processed-data/training_data.parquet" in result.stdout
            assert "Revenue_Prediction_Regression" in result.stdout
            assert not re.search(r"REVCLI_TRACKING_UR(?!I)", result.stdout)
        if name == "train":
            # the run line's id and the model's path each stay whole
            assert re.search(r"\b[0-9a-f]{32}\b", result.stdout)
            assert "model.skops" in result.stdout
