"""Column types: what a table's columns become, and that predict applies the same encoding."""

from __future__ import annotations

import pickle

import numpy as np
import pandas as pd
import pytest

from revcli import features, pipeline, settings
from revcli.features import OTHER, Featurizer


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 600
    return pd.DataFrame({
        "hour": rng.integers(0, 24, n).astype("int32"),
        "weekend": rng.random(n) < 0.2,
        "spend": np.where(rng.random(n) < 0.1, np.nan, rng.random(n) * 10),
        "source": rng.choice(["gsearch", "bsearch", "socialbook", "rare"], n,
                             p=[0.6, 0.3, 0.099, 0.001]),
        "created_at": pd.Timestamp("2013-12-30 10:00") + pd.to_timedelta(
            rng.integers(0, 400 * 24, n), "h"),
    })


def test_kinds() -> None:
    assert features.kind(np.dtype("int32")) == features.NUMBER
    assert features.kind(np.dtype("bool")) == features.NUMBER
    assert features.kind(pd.CategoricalDtype(["a"])) == features.CATEGORY
    assert features.kind(pd.Series(["a"]).dtype) == features.CATEGORY
    assert features.kind(np.dtype("datetime64[us]")) == features.DATETIME
    assert features.kind(np.dtype("complex128")) is None
    assert features.kind(np.dtype("timedelta64[s]")) is None


def test_one_hot_imputation_and_calendar_features(table) -> None:
    f = Featurizer().fit(table)
    out = f.transform(table)
    assert out.dtypes.unique().tolist() == [np.float32]
    # categories: kept levels (0.5 % or more of the rows), then the other bucket
    assert [c for c in out.columns if c.startswith("source=")] == [
        "source=bsearch", "source=gsearch", "source=socialbook", f"source={OTHER}"]
    assert out[f"source={OTHER}"].sum() == (table.source == "rare").sum()
    # gaps: the training median and an indicator, never NaN
    assert not out.isna().any().any()
    assert out["spend__missing"].sum() == table.spend.isna().sum()
    assert out.loc[table.spend.isna(), "spend"].eq(np.float32(table.spend.median())).all()
    # timestamps never go in raw: month index, day of week, hour
    assert {"created_at__month", "created_at__dayofweek", "created_at__hour"} <= set(out)
    assert "created_at" not in out
    first = table.created_at.iloc[0]
    assert out["created_at__month"].iloc[0] == (first.year - 1970) * 12 + first.month - 1


def test_native_categories_keep_fixed_levels_and_unseen_ones_go_to_other(table) -> None:
    f = Featurizer(native_categories=True, handles_missing=True).fit(table)
    later = table.head(3).assign(source=["gsearch", "brand-new", None])
    out = f.transform(later)
    assert list(out["source"].cat.categories) == ["bsearch", "gsearch", "socialbook", OTHER]
    assert list(out["source"].astype(str)) == ["gsearch", OTHER, OTHER]
    assert out["spend"].isna().sum() == later.spend.isna().sum()  # left to the estimator


def test_linear_models_get_standardised_numbers(table) -> None:
    out = Featurizer(scale=True).fit(table).transform(table)
    assert abs(float(out["created_at__month"].mean())) < 1e-3
    assert float(out["created_at__month"].std()) == pytest.approx(1.0, rel=0.01)
    assert set(out["source=gsearch"].unique()) <= {0.0, 1.0}  # levels stay 0/1


@pytest.mark.parametrize("estimator", ["xgb", "hgb", "ridge", "rf", "mean", "xgb_log"])
def test_every_estimator_learns_from_a_real_table_and_predicts_on_new_rows(table,
                                                                           estimator) -> None:
    y = np.where(table.source == "gsearch", 50.0, 0.0) * (np.arange(len(table)) % 4 == 0)
    s = settings.resolve(flags={"strategy": "two_stage", "estimator": estimator}, env={})
    model = pipeline.build(s, {"n_estimators": 20} if estimator in ("xgb", "rf") else {},
                           n_jobs=1)
    model.fit(table, y)
    later = table.head(20).assign(source="never seen", spend=np.nan)
    parts = model.predict_parts(later)
    assert np.isfinite(parts["prediction"]).all() and (parts["prediction"] >= 0).all()
    again = pickle.loads(pickle.dumps(model))
    np.testing.assert_allclose(again.predict(later), parts["prediction"])
    # extra columns in a scoring table are ignored; a missing one is named
    np.testing.assert_allclose(model.predict(later.assign(extra=1)), parts["prediction"])
    with pytest.raises(ValueError, match="lacks 1 feature column"):
        model.predict(later.drop(columns="hour"))


def _millis(stamps: pd.Series) -> pd.Series:
    return (stamps - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1)


def test_timestamps_that_cannot_be_the_learned_feature_are_refused(table) -> None:
    from revcli.errors import DataError

    f = Featurizer().fit(table)
    assert f.describe()["windows"]["created_at"][0] == str(table.created_at.min().isoformat())
    ok = f.transform(table.assign(created_at=table.created_at.dt.strftime("%Y-%m-%dT%H:%M:%S")))
    np.testing.assert_array_equal(ok["created_at__month"], f.transform(table)["created_at__month"])
    # A year later is a forecast, not an error.
    later = f.transform(table.assign(created_at=table.created_at + pd.Timedelta(days=365)))
    assert np.isfinite(later["created_at__month"]).all()
    cases = {
        "holds numbers (": table.assign(created_at=_millis(table.created_at)),
        "before the training window": table.assign(
            created_at=pd.to_datetime(_millis(table.created_at))),  # epoch ms read as ns
        "that are no timestamp ('soon')": table.assign(created_at="soon"),
    }
    for expected, bad in cases.items():
        with pytest.raises(features.TimestampRefused) as caught:
            f.transform(bad)
        message = str(caught.value)
        assert expected in message and "created_at" in message and "ISO 8601" in message
        assert "\n" not in message
        assert isinstance(caught.value, DataError) and isinstance(caught.value, ValueError)


def test_a_refusal_under_mlflow_is_a_bad_request_with_one_line(table) -> None:
    from mlflow.exceptions import MlflowException

    f = Featurizer().fit(table)
    with pytest.raises(MlflowException) as caught:
        f.transform(table.assign(created_at=pd.to_datetime(_millis(table.created_at))))
    exc = caught.value
    exc.message = f"Failed to predict data '{table}'. \nError: {exc.message}"  # as the server
    body = exc.serialize_as_json()
    assert exc.get_http_status_code() == 400
    assert "before the training window" in body and "Failed to predict" not in body


def test_a_model_saved_before_windows_were_kept_still_predicts(table) -> None:
    f = Featurizer().fit(table)
    del f.windows_
    assert np.isfinite(f.transform(table)["created_at__month"]).all()


# -- input drift at predict time (issue 21, class 4) --------------------------------------------

def _flags_and_numbers() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame({"flag": rng.random(200) < 0.3, "x": rng.normal(size=200)})


def test_a_flag_arriving_as_text_encodes_as_the_flag_did() -> None:
    frame = _flags_and_numbers()
    fitted = Featurizer(scale=True).fit(frame)
    as_text = frame.assign(flag=frame["flag"].map({True: " TRUE", False: "false"}))
    pd.testing.assert_frame_equal(fitted.transform(as_text), fitted.transform(frame))
    as_digits = frame.assign(flag=frame["flag"].astype(int).astype(str))
    pd.testing.assert_frame_equal(fitted.transform(as_digits), fitted.transform(frame))


def test_text_that_is_no_flag_and_new_gaps_are_refused_naming_the_column() -> None:
    from revcli.errors import DataError

    frame = _flags_and_numbers()
    fitted = Featurizer().fit(frame)
    with pytest.raises(DataError, match=r"'flag'.*'maybe'"):
        fitted.transform(frame.assign(flag=["maybe"] * len(frame)))
    # a gap where training saw none is imputed with the training median (learned for every
    # number); a model from before that, with no median for the column, refuses it
    imputed = fitted.transform(frame.assign(x=[np.nan, *frame["x"].iloc[1:]]))
    assert imputed["x"].iloc[0] == pytest.approx(float(np.median(frame["x"])))
    del fitted.medians_["x"]
    with pytest.raises(DataError, match="'x' has 1 missing"):
        fitted.transform(frame.assign(x=[np.nan, *frame["x"].iloc[1:]]))
    # an estimator that takes gaps gets them as they are
    gaps = Featurizer(handles_missing=True).fit(frame)
    assert np.isnan(gaps.transform(frame.assign(x=np.nan))["x"]).all()


def test_a_duplicated_feature_column_is_refused_naming_it() -> None:
    from revcli.errors import DataError

    frame = _flags_and_numbers()
    fitted = Featurizer().fit(frame)
    with pytest.raises(DataError, match="'x' appears 2 times"):
        fitted.transform(pd.concat([frame, frame[["x"]]], axis=1))
