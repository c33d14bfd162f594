"""revcli.doctor: every check on real files, a real sqlite store, real closed ports and a real S3
gateway; nothing is created and no secret is shown."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from revcli import doctor
from tests.integration.servers import free_port

SECRET = "s3cr3t"


def _checks(report: doctor.Report) -> dict[str, doctor.Check]:
    return {c.name: c for c in report.checks}


@pytest.fixture(autouse=True)
def no_aws_files(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_a_fresh_workspace_is_ok_and_is_not_created(isolated: Path) -> None:
    report = doctor.diagnose()
    checks = _checks(report)
    assert report.ok, report.to_dict()
    assert [c.name for c in report.checks] == ["config", "settings", "workspace", "disk",
                                               "datasets", "s3", "tracking", "study storage",
                                               "versions"]
    assert "does not exist yet" in checks["workspace"].detail
    assert checks["datasets"].status == "warn" and "revcli fetch --demo" in checks["datasets"].fix
    assert "skipped" in checks["s3"].detail
    assert "first `revcli train` creates it" in checks["tracking"].detail
    assert "first `revcli tune` creates it" in checks["study storage"].detail
    assert not isolated.exists()  # a check only reads
    versions = report.to_dict()["versions"]
    for name in ("python", "revcli", "mlflow", "optuna", "scikit-learn", "xgboost", "pandas",
                 "pyarrow", "boto3"):
        assert versions[name], name
    json.dumps(report.to_dict())


def test_a_real_store_and_dataset_are_counted(small_settings, isolated: Path) -> None:
    from tests.workspaces import seed_store

    seed_store(isolated)
    (isolated / "studies").mkdir()
    sqlite3.connect(isolated / "studies" / "optuna.db").execute(
        "CREATE TABLE studies (id INTEGER)").connection.close()
    checks = _checks(doctor.diagnose())
    assert checks["tracking"].status == "ok"
    assert "an MLflow store, 0 runs in 1 experiment" in checks["tracking"].detail
    assert checks["datasets"].status == "ok" and "is whole" in checks["datasets"].detail
    # an sqlite file without Optuna's trials table: said, not a problem
    assert checks["study storage"].status == "warn"


def test_garbage_mlflow_db_is_a_problem_and_left_alone(isolated: Path) -> None:
    isolated.mkdir()
    (isolated / "mlflow.db").write_bytes(b"not a database at all" * 10)
    report = doctor.diagnose()
    check = _checks(report)["tracking"]
    assert check.status == "problem" and "not an sqlite database" in check.detail
    assert "move mlflow.db aside" in check.fix
    assert [c.name for c in report.problems] == ["tracking"]
    assert (isolated / "mlflow.db").read_bytes() == b"not a database at all" * 10


def test_a_broken_current_dataset_is_a_problem(small_settings, isolated: Path) -> None:
    from revcli.workspace import Workspace

    record = Workspace(isolated).current()
    record.path.write_bytes(record.path.read_bytes()[:100])
    check = _checks(doctor.diagnose())["datasets"]
    assert check.status == "problem" and "revcli fetch" in check.detail


def test_postgres_on_a_closed_port_is_a_problem_without_the_password(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REVCLI_STORAGE", f"postgresql://u:{SECRET}@127.0.0.1:{free_port()}/db")
    started = time.monotonic()
    report = doctor.diagnose()
    assert time.monotonic() - started < 15
    check = _checks(report)["study storage"]
    assert check.status == "problem" and "cannot connect" in check.detail
    assert "u:***@127.0.0.1" in check.detail
    assert SECRET not in json.dumps(report.to_dict())


def test_a_dead_tracking_server_is_a_problem_in_seconds(isolated: Path) -> None:
    started = time.monotonic()
    report = doctor.diagnose(flags={"tracking_uri": f"http://127.0.0.1:{free_port()}"})
    assert time.monotonic() - started < 10
    check = _checks(report)["tracking"]
    assert check.status == "problem" and "does not answer" in check.detail
    assert "--tracking-uri" in check.fix


def test_bad_config_and_env_are_problems_and_the_rest_still_runs(
        isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "configs").mkdir()
    (tmp_path / "configs" / "revcli.toml").write_text("seed = [\n")
    monkeypatch.setenv("REVCLI_SEED", "many")
    report = doctor.diagnose()
    checks = _checks(report)
    assert checks["config"].status == "problem" and "not valid TOML" in checks["config"].detail
    assert checks["settings"].status == "problem" and "REVCLI_SEED" in checks["settings"].detail
    # REVCLI_WORKSPACE (valid) is still honoured by the checks after it
    assert str(isolated) in checks["workspace"].detail
    assert {c.name for c in report.problems} == {"config", "settings"}


def test_s3_unreachable_endpoint_is_one_quick_problem(
        isolated: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAREVCLITESTKEY0001")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET + "-aws")
    started = time.monotonic()
    report = doctor.diagnose(flags={"endpoint_url": f"http://127.0.0.1:{free_port()}"})
    assert time.monotonic() - started < 15
    check = _checks(report)["s3"]
    assert check.status == "problem" and "cannot reach the S3 endpoint" in check.detail
    text = json.dumps(report.to_dict())
    assert SECRET not in text and "AKIAREVCLITESTKEY0001" not in text


@pytest.mark.integration
def test_s3_head_on_a_real_gateway(isolated: Path, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.servers import s3_server

    with s3_server(tmp_path / "s3") as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        s3.create_bucket("processed-data")
        s3.client().put_object(Bucket="processed-data", Key="training_data.parquet",
                               Body=b"x" * 2048)
        ok = _checks(doctor.diagnose(flags={"endpoint_url": s3.endpoint}))["s3"]
        missing = _checks(doctor.diagnose(flags={
            "endpoint_url": s3.endpoint, "source": None}, env={
            **s3.env(), "REVCLI_SOURCE": "s3://processed-data/nope.parquet",
            "REVCLI_WORKSPACE": str(isolated)}))["s3"]
    assert ok.status == "ok" and "s3://processed-data/training_data.parquet" in ok.detail
    assert missing.status == "problem" and "no such key" in missing.detail
    assert s3.secret_key not in ok.detail + missing.detail


@pytest.mark.integration
def test_s3_source_prefix_of_parts_is_listed(isolated: Path, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.integration.servers import s3_server

    with s3_server(tmp_path / "s3") as s3:
        for key, value in s3.env().items():
            monkeypatch.setenv(key, value)
        s3.create_bucket("processed-data")
        for day in ("2015-03-01", "2015-03-02"):
            s3.client().put_object(Bucket="processed-data", Body=b"x" * 1000,
                                   Key=f"sessions/dt={day}/part-0.parquet")
        s3.client().put_object(Bucket="processed-data", Key="sessions/_SUCCESS", Body=b"")

        def check(source: str) -> doctor.Check:
            return _checks(doctor.diagnose(flags={"endpoint_url": s3.endpoint}, env={
                **s3.env(), "REVCLI_SOURCE": source, "REVCLI_WORKSPACE": str(isolated)}))["s3"]

        ok = check("s3://processed-data/sessions/")
        empty = check("s3://processed-data/nothing/")
    assert ok.status == "ok", ok
    assert ok.detail.startswith("s3://processed-data/sessions/ at ")
    assert "2 parquet parts" in ok.detail
    assert empty.status == "problem" and "no parquet parts under" in empty.detail
