"""revcli predict: one JSON line for Airflow, one-line errors with exit 2."""

from __future__ import annotations

import json

import pandas as pd

from tests.cli.test_train import _one_line_error


def test_predict_json(invoke, trained, tmp_path) -> None:
    out = tmp_path / "scored.parquet"
    result = invoke("predict", "--run", trained.run_id, "--data", str(trained.dataset.path),
                    "--out", str(out), "--workspace", str(trained.model_path.parents[2]),
                    "--json")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["rows"] == trained.dataset.rows == len(pd.read_parquet(out))
    assert payload["columns"] == ["row", "prediction"]
    assert "ignoring" not in result.stdout


def test_predict_table_and_errors(invoke, trained, tmp_path) -> None:
    ws = ["--workspace", str(trained.model_path.parents[2])]
    out = tmp_path / "scored.csv"
    ok = invoke("predict", "--model", str(trained.model_path), "--data",
                str(trained.dataset.path), "--out", str(out), *ws)
    assert ok.exit_code == 0, ok.output
    assert f"wrote {trained.dataset.rows:,} predictions" in ok.stdout
    # text rich could read as markup is shown as written
    assert "E[revenue | order]" in ok.stdout
    assert "ignoring 2 column(s) the model does not use: is_ordered, revenue" in ok.stderr
    cut = tmp_path / "cut.parquet"
    pd.read_parquet(trained.dataset.path).drop(columns=["is_weekend"]).to_parquet(cut)
    _one_line_error(invoke("predict", "--run", trained.run_id, "--data", str(cut), "--out",
                           str(tmp_path / "x.parquet"), *ws), "lacks 1 column(s) the model "
                    "needs: is_weekend")
    _one_line_error(invoke("predict", "--run", "f" * 32, "--data", str(cut), "--out",
                           str(tmp_path / "x.parquet"), *ws), "no MLflow run")
    _one_line_error(invoke("predict", "--run", trained.run_id, "--data",
                           str(tmp_path / "none.parquet"), "--out", str(tmp_path / "x.parquet"),
                           *ws), "does not exist")
    assert not (tmp_path / "x.parquet").exists()
