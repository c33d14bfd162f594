"""``revcli serve`` (a real ``mlflow models serve``) and ``revcli config --env``."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]


def _post(url: str, body: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, body.encode(),
                                     {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_serve_an_unknown_run_exits_2_and_starts_nothing(invoke, small_settings,
                                                         isolated: Path) -> None:
    from revcli import train

    train.train(small_settings, plots=False)
    result = invoke("serve", "--run", "ffffffff", "--port", "0")
    assert result.exit_code == 2
    assert [ln for ln in result.stderr.splitlines() if ln.startswith("Error:")] == [
        next(ln for ln in result.stderr.splitlines() if ln.startswith("Error:"))]
    assert "ffffffff" in result.stderr and "Traceback" not in result.stderr
    assert not (isolated / "serve" / "serve.log").exists()


def test_serve_without_a_store_exits_2_and_creates_none(invoke, isolated: Path) -> None:
    result = invoke("serve", "--run", "latest")
    assert result.exit_code == 2
    assert "revcli train" in result.stderr
    assert not (isolated / "mlflow.db").exists()


@pytest.mark.integration
def test_serve_answers_like_predict_and_refuses_epoch_milliseconds(
        invoke, small_settings, isolated: Path, tmp_path: Path, small_demo) -> None:
    from revcli import train

    run_id = train.train(small_settings, plots=False).run_id
    rows = small_demo.head(40)
    data = tmp_path / "rows.parquet"
    rows.to_parquet(data, index=False)
    scored = tmp_path / "scored.parquet"
    result = invoke("predict", "--run", run_id[:8], "--data", str(data), "--out", str(scored))
    assert result.exit_code == 0, result.stderr
    expected = pd.read_parquet(scored)["prediction"].to_numpy()

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from revcli._entry import main; main()", "serve", "--run",
         run_id[:8], "--port", "0", "--json"], cwd=tmp_path, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # printed once /ping answers
        assert line, proc.stderr.read() if proc.stderr else ""
        info = json.loads(line)
        assert info["run_id"] == run_id and info["model_uri"].startswith("models:/")
        features = info["request"]["dataframe_split"]["columns"]
        assert "created_at" in features

        # The printed curl line works as it is (ISO timestamps in its request file).
        curl = subprocess.run(shlex.split(info["curl"]), capture_output=True, text=True,
                              timeout=60, check=True)
        assert len(json.loads(curl.stdout)["predictions"]) == 1

        iso = rows[features].to_json(orient="split", index=False, date_format="iso")
        status, body = _post(info["invocations"], f'{{"dataframe_split": {iso}}}')
        assert status == 200, body
        assert json.loads(body)["predictions"] == pytest.approx(expected, rel=1e-6)

        # pandas' old default: timestamps as epoch milliseconds
        millis = rows[features].assign(created_at=(rows["created_at"] - pd.Timestamp(0))
                                       // pd.Timedelta(milliseconds=1))
        epoch = millis.to_json(orient="split", index=False)
        status, body = _post(info["invocations"], f'{{"dataframe_split": {epoch}}}')
        assert status == 400
        error = json.loads(body)
        assert "predictions" not in error
        message = error["message"]
        assert "\n" not in message and "created_at" in message and "ISO 8601" in message
        assert "1970" in message

        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert proc.stdout.read() == ""  # --json: the one object, nothing after it
        deadline = time.monotonic() + 10
        while not _gone(info["pid"]) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _gone(info["pid"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_config_env_prints_sourceable_exports_without_credentials(invoke, isolated: Path,
                                                                   monkeypatch) -> None:
    result = invoke("config", "--env")
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines == [f"export REVCLI_WORKSPACE={isolated.resolve()}",
                     f"export MLFLOW_TRACKING_URI=sqlite:///{isolated.resolve()}/mlflow.db"]
    # a shell can source them as they are
    shell = subprocess.run(["bash", "-c", result.stdout + 'echo "$MLFLOW_TRACKING_URI"'],
                           capture_output=True, text=True, check=True)
    assert shell.stdout.strip() == f"sqlite:///{isolated.resolve()}/mlflow.db"

    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://bob:s3cr3t@tracking:5000")
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", "http://minio:9000")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "s3cr3t-key")
    result = invoke("config", "--env")
    assert "s3cr3t" not in result.stdout
    assert "export MLFLOW_TRACKING_URI=http://bob@tracking:5000  # password left out" in (
        result.stdout)
    assert "export AWS_ENDPOINT_URL_S3=http://minio:9000" in result.stdout
    assert "export AWS_DEFAULT_REGION=eu-west-1" in result.stdout
    data = json.loads(invoke("config", "--env", "--json").stdout)
    assert data["env"]["MLFLOW_S3_ENDPOINT_URL"] == "http://minio:9000"


def test_the_logged_model_documents_iso_timestamps_and_refuses_epoch_numbers(
        trained, monkeypatch) -> None:
    import mlflow
    from mlflow.exceptions import MlflowException

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained.tracking_uri)  # put back after
    model = mlflow.pyfunc.load_model(f"runs:/{trained.run_id}/model")
    example = model.input_example  # input_example.json beside the signature
    assert example is not None and "created_at" in example.columns
    info = model.metadata.saved_input_example_info
    assert info["type"] == "dataframe" and info.get("serving_input_path")  # the request format
    stamps = pd.to_datetime(example["created_at"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", stamps.iloc[0].isoformat())
    assert len(model.predict(example.assign(created_at=stamps))) == len(example)
    with pytest.raises(MlflowException, match="before the training window"):
        model.predict(example.assign(created_at=pd.to_datetime(
            (stamps - pd.Timestamp(0)) // pd.Timedelta(milliseconds=1))))
