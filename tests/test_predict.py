"""predict(): every input row, in order, beside its ids; equal to the model's own predictions;
written whole or not at all; models found by run id, registry alias or file."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from revcli import predict, serialization, settings, train
from revcli.errors import ConfigError, DataError
from tests.workspaces import seed_store


@pytest.fixture
def sessions(small_demo, tmp_path: Path) -> tuple[pd.DataFrame, Path]:
    frame = small_demo.sample(n=7_000, random_state=3)  # shuffled: order must survive
    frame.insert(0, "session_id", np.arange(70_000, 77_000)[::-1])
    frame["campaign"] = 1
    path = tmp_path / "sessions.parquet"
    frame.to_parquet(path, index=False)
    return frame.reset_index(drop=True), path


@pytest.fixture
def trained_settings(trained):
    return settings.resolve(flags={"workspace": str(trained.model_path.parents[2])}, env={})


def _expected(model_path: Path, frame: pd.DataFrame, features: list[str]) -> np.ndarray:
    return serialization.load(model_path).predict(frame[features])


def test_rows_order_ids_and_values_match_the_model(trained, trained_settings, sessions,
                                                   tmp_path) -> None:
    frame, path = sessions
    out = tmp_path / "scored.parquet"
    result = predict.predict(trained_settings, run=trained.run_id, data=path, out=out,
                             batch_rows=1_500)
    assert result.batches == 5 and result.rows == len(frame)
    assert result.id_columns == ["session_id"]
    assert set(result.ignored) == {"revenue", "is_ordered", "campaign"}
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["session_id", "prediction"]
    assert len(scored) == len(frame)
    assert (scored["session_id"].to_numpy() == frame["session_id"].to_numpy()).all()
    np.testing.assert_allclose(scored["prediction"].to_numpy(),
                               _expected(trained.model_path, frame, trained.features))
    import pyarrow.parquet as pq

    meta = pq.read_schema(out).metadata
    assert b"E[revenue | order]" in meta[b"revcli.prediction"]
    assert meta[b"revcli.model_sha256"].decode() == trained.model_sha256
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_csv_output_and_a_row_column_without_ids(trained, trained_settings, sessions,
                                                 tmp_path) -> None:
    frame, _ = sessions
    path = tmp_path / "noids.parquet"
    frame.drop(columns=["session_id"]).to_parquet(path, index=False)
    out = tmp_path / "scored.csv"
    predict.predict(trained_settings, model=trained.model_path, data=path, out=out,
                    batch_rows=4_000)
    with open(out, newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(frame) and list(rows[0]) == ["row", "prediction"]
    assert [int(r["row"]) for r in rows] == list(range(len(frame)))
    np.testing.assert_allclose([float(r["prediction"]) for r in rows],
                               _expected(trained.model_path, frame, trained.features),
                               rtol=1e-6)


def test_bad_input_leaves_no_output(trained, trained_settings, sessions, tmp_path) -> None:
    frame, _ = sessions
    missing = tmp_path / "missing.parquet"
    frame.drop(columns=["hour_of_day", "device_type_mobile"]).to_parquet(missing)
    out = tmp_path / "out.parquet"
    with pytest.raises(DataError, match=r"lacks 2 column.*hour_of_day, device_type_mobile"):
        predict.predict(trained_settings, run=trained.run_id, data=missing, out=out)
    # a bad value in the 4th batch: the first three were written to the temp file, and
    # neither it nor a partial output survives
    holes = frame.copy()
    holes["hour_of_day"] = holes["hour_of_day"].astype(float)
    holes.loc[6_500, "hour_of_day"] = np.inf
    bad = tmp_path / "holes.parquet"
    holes.to_parquet(bad, index=False)
    with pytest.raises(DataError, match="rows 6,000-6,999: feature 'hour_of_day' has 1 infinite"):
        predict.predict(trained_settings, run=trained.run_id, data=bad, out=out,
                        batch_rows=2_000)
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["holes.parquet", "missing.parquet",
                                                          "sessions.parquet"]
    with pytest.raises(ConfigError, match="suffix must be"):
        predict.predict(trained_settings, run=trained.run_id, data=bad, out="x.json")
    with pytest.raises(ConfigError, match="is the input file"):
        predict.predict(trained_settings, run=trained.run_id, data=bad, out=bad)


def test_empty_input_gives_an_empty_output(trained, trained_settings, sessions, tmp_path):
    frame, _ = sessions
    empty = tmp_path / "empty.parquet"
    frame.head(0).to_parquet(empty, index=False)
    out = tmp_path / "out.parquet"
    result = predict.predict(trained_settings, model=trained.model_path, data=empty, out=out)
    assert result.rows == 0 and list(pd.read_parquet(out).columns) == ["session_id",
                                                                       "prediction"]


def test_two_stage_through_a_registry_alias(small_settings, sessions, tmp_path) -> None:
    from mlflow import MlflowClient

    seed_store(small_settings.workspace)
    s = small_settings.replace(strategy="two_stage", estimator="ridge")
    source = train.train(s, drop_features=["engagement_depth"], plots=False)
    client = MlflowClient(tracking_uri=source.tracking_uri)
    client.create_registered_model(s.registry_model)
    # (the artifact location: MLflow's sqlite registry resolves a models:/ source through the
    # global tracking URI, which revcli never sets)
    location = client.get_logged_model(source.model_uri.removeprefix("models:/")).artifact_location
    version = client.create_model_version(s.registry_model, source=location,
                                          run_id=source.run_id)
    client.set_registered_model_alias(s.registry_model, "champion", version.version)

    frame, path = sessions
    out = tmp_path / "scored.parquet"
    result = predict.predict(s, run="champion", data=path, out=out)
    assert result.model.run_id == source.run_id
    assert result.model.source.startswith(f"registry {s.registry_model}@champion (version 1")
    assert "engagement_depth" in result.ignored
    scored = pd.read_parquet(out)
    assert list(scored.columns) == ["session_id", "prediction", "p_order", "order_value"]
    model = serialization.load(source.model_path)
    X = frame[source.features]
    np.testing.assert_allclose(scored["prediction"], model.predict(X))
    np.testing.assert_allclose(scored["p_order"], model.order_probability(X))
    np.testing.assert_allclose(scored["prediction"], scored["p_order"] * scored["order_value"])
    # each stage runs once per batch; the threshold combination matches the model's own too
    model.strategy_.set_params(combine="threshold", threshold=0.2)
    np.testing.assert_allclose(model.predict_parts(X)["prediction"], model.predict(X))
    # the same through models:/NAME/VERSION
    again = predict.predict(s, run=f"models:/{s.registry_model}/1", data=path,
                            out=tmp_path / "again.parquet")
    assert again.model.run_id == source.run_id
