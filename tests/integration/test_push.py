"""`revcli push` against a real S3 server and a real MLflow tracking server (registry included)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

from revcli import demo, settings, train
from revcli.storage import Location, S3Storage
from revcli.workspace import Workspace
from tests.integration.servers import MlflowServer, S3Server


@dataclass
class Runs:
    workspace: Path
    tracking_uri: str
    mean: str  # converting_only / mean: the weaker model
    ridge: str  # converting_only / ridge on the same dataset and split: the stronger one
    leaky: str  # all / ridge with engagement_depth: its scores rest on the leak
    other_data: str  # ridge on another dataset (other sha256)
    rmse: dict[str, float]


@pytest.fixture(scope="session")
def runs(tmp_path_factory: pytest.TempPathFactory, mlflow: MlflowServer, small_demo) -> Runs:
    root = tmp_path_factory.mktemp("push")
    ws = Workspace(root / "ws")
    config = root / "empty.toml"
    config.write_text("")

    def fit(estimator: str, drop: list[str], strategy: str = "converting_only"
            ) -> train.TrainResult:
        s = settings.resolve(flags={"workspace": str(ws.root), "estimator": estimator,
                                    "strategy": strategy, "tracking_uri": mlflow.uri},
                             config_file=config, env={})
        return train.train(s, drop_features=drop, plots=False)

    ws.write_dataset(small_demo, source="demo:push")
    mean = fit("mean", ["engagement_depth"])
    ridge = fit("ridge", ["engagement_depth"])
    leaky = fit("ridge", [], strategy="all")
    ws.write_dataset(demo.generate(rows=8_000, seed=7), source="demo:other")
    other = fit("ridge", ["engagement_depth"])
    assert ridge.scorecard.metrics["rmse"] < mean.scorecard.metrics["rmse"]
    assert leaky.leakage and not ridge.leakage
    return Runs(workspace=ws.root, tracking_uri=mlflow.uri, mean=mean.run_id,
                ridge=ridge.run_id, leaky=leaky.run_id, other_data=other.run_id,
                rmse={r.run_id: r.scorecard.metrics["rmse"] for r in (mean, ridge, leaky, other)})


@pytest.fixture
def target(s3_env: S3Server, bucket: str, runs: Runs):
    """Push arguments for a fresh bucket and a fresh registered model name."""
    name = f"rev-{uuid.uuid4().hex[:8]}"

    def args(run_id: str, *extra: str) -> list[str]:
        return ["push", "--run", run_id, "--workspace", str(runs.workspace), "--tracking-uri",
                runs.tracking_uri, "--endpoint-url", s3_env.endpoint, "--uri",
                f"s3://{bucket}/regression_model.pkl", "--name", name, *extra]

    args.name = name  # type: ignore[attr-defined]
    return args


def _champion(runs: Runs, name: str) -> str | None:
    from mlflow import MlflowClient

    return MlflowClient(runs.tracking_uri).get_registered_model(name).aliases.get("champion")


def _error(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1, result.output
    return lines[0]


def test_push_uploads_model_and_metadata_and_registers_a_version(invoke, s3_env, bucket, runs,
                                                                 target) -> None:
    result = invoke(*target(runs.ridge), "--json")
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    model_json = json.loads((runs.workspace / "models" / runs.ridge / "model.json").read_text())
    skops_sha = model_json["model_sha256"]
    assert body["version"] == "1"
    assert body["metadata_uri"] == f"s3://{bucket}/regression_model.json"

    client = s3_env.client()
    obj = client.get_object(Bucket=bucket, Key="regression_model.pkl")
    data = obj["Body"].read()
    sha = hashlib.sha256(data).hexdigest()
    assert body["model_sha256"] == sha == obj["Metadata"]["sha256"]
    assert obj["Metadata"]["revcli-run-id"] == runs.ridge
    # the safe file beside it is the workspace's own skops file, byte for byte
    safe = client.get_object(Bucket=bucket, Key="regression_model.skops")
    safe_data = safe["Body"].read()
    assert safe_data == (runs.workspace / "models" / runs.ridge / "model.skops").read_bytes()
    assert hashlib.sha256(safe_data).hexdigest() == skops_sha == safe["Metadata"]["sha256"]
    # the pickle loads under the sha256 rule (its hash is a tag of the run), the skops file
    # anywhere
    from revcli import modelref, tracking

    for key in ("regression_model.pkl", "regression_model.skops"):
        local = runs.workspace.parent / key
        local.write_bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())
        loaded = modelref.load_file(local, tracker=tracking.Tracker(runs.tracking_uri, None))
        assert loaded.run_id == runs.ridge, key

    meta_obj = client.get_object(Bucket=bucket, Key="regression_model.json")
    raw = meta_obj["Body"].read()
    assert hashlib.sha256(raw).hexdigest() == meta_obj["Metadata"]["sha256"]
    meta = json.loads(raw)
    assert meta["run_id"] == runs.ridge
    assert {k: meta["model"][k] for k in ("uri", "sha256", "bytes", "format")} == {
        "uri": f"s3://{bucket}/regression_model.pkl", "sha256": sha, "bytes": len(data),
        "format": "pickle"}
    assert [(f["uri"], f["sha256"], f["format"]) for f in meta["files"]] == [
        (f"s3://{bucket}/regression_model.pkl", sha, "pickle"),
        (f"s3://{bucket}/regression_model.skops", skops_sha, "skops")]
    assert "revcli.model.RevenueModel" in meta["files"][1]["trusted_types"]
    assert meta["metrics"]["rmse"] == pytest.approx(runs.rmse[runs.ridge])
    assert meta["params"]["estimator"] == "ridge"
    assert meta["dataset_sha256"] == model_json["dataset_sha256"]
    assert meta["split_hash"] == model_json["split_hash"]
    assert meta["versions"]["revcli"] and meta["versions"]["scikit-learn"]
    assert meta["registry"] == {"name": target.name, "version": "1"}
    assert s3_env.secret_key not in raw.decode()

    from mlflow import MlflowClient

    version = MlflowClient(runs.tracking_uri).get_model_version(target.name, "1")
    assert version.run_id == runs.ridge
    assert version.tags["revcli.dataset_sha256"] == model_json["dataset_sha256"]
    assert version.tags["revcli.split_hash"] == model_json["split_hash"]
    assert float(version.tags["revcli.metric.rmse"]) == pytest.approx(runs.rmse[runs.ridge],
                                                                      rel=1e-5)
    assert version.source.startswith("models:/")
    assert _champion(runs, target.name) is None  # no --promote, no champion

    again = invoke(*target(runs.ridge), "--json")
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["version"] == "1"  # pushing a run twice reuses its version
    assert json.loads(again.stdout)["version_reused"] is True

    candidate = invoke(*target(runs.mean), "--key", "candidates/mean.pkl", "--json")
    assert candidate.exit_code == 0, candidate.output
    assert json.loads(candidate.stdout)["model_uri"] == f"s3://{bucket}/candidates/mean.pkl"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="candidates/")
            ["Contents"]}
    assert keys == {"candidates/mean.pkl", "candidates/mean.skops", "candidates/mean.json"}

    only = invoke(*target(runs.mean), "--key", "safe/mean.pkl", "--format", "skops", "--json")
    assert only.exit_code == 0, only.output
    assert json.loads(only.stdout)["model_uri"] == f"s3://{bucket}/safe/mean.skops"
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="safe/")["Contents"]}
    assert keys == {"safe/mean.skops", "safe/mean.json"}


def test_the_promotion_gate(invoke, s3_env, bucket, runs, target) -> None:
    first = invoke(*target(runs.mean, "--promote"))
    assert first.exit_code == 0, first.output
    assert "no champion yet" in first.stdout and _champion(runs, target.name) == "1"

    # ridge is $0.48 better on the same 276 test converters, within the noise (± $0.59): the
    # default gate refuses it with the interval, --margin 0 promotes any gain (issue 20)
    noisy = invoke(*target(runs.ridge, "--promote"))
    assert noisy.exit_code == 1, noisy.output
    line = _error(noisy)
    assert "not a clear gain" in line and " ± " in line and "paired on the same" in line
    assert _champion(runs, target.name) == "1"
    better = invoke(*target(runs.ridge, "--promote", "--margin", "0", "--json"))
    assert better.exit_code == 0, better.output
    gate = json.loads(better.stdout)["gate"]
    assert gate["verdict"] == "won" and gate["champion_version"] == "1"
    assert gate["candidate"] == pytest.approx(runs.rmse[runs.ridge])
    assert gate["champion"] == pytest.approx(runs.rmse[runs.mean])
    assert _champion(runs, target.name) == "2"
    champion_sha = json.loads(better.stdout)["model_sha256"]

    # The weaker model loses: exit 1 with both scores, champion and S3 object untouched.
    worse = invoke(*target(runs.mean, "--promote"))
    assert worse.exit_code == 1, worse.output
    line = _error(worse)
    assert "does not beat champion v2" in line
    assert f"{runs.rmse[runs.mean]:.4g}" in line and f"{runs.rmse[runs.ridge]:.4g}" in line
    assert "nothing was uploaded or registered" in line
    assert _champion(runs, target.name) == "2"
    head = s3_env.client().head_object(Bucket=bucket, Key="regression_model.pkl")
    assert head["Metadata"]["sha256"] == champion_sha

    # Pushing the champion itself again is fine.
    same = invoke(*target(runs.ridge, "--promote", "--json"))
    assert same.exit_code == 0 and json.loads(same.stdout)["gate"]["verdict"] == "already champion"

    # Without --promote the key is overwritten, and push says it no longer holds the champion.
    plain = invoke(*target(runs.mean))
    assert plain.exit_code == 0, plain.output
    assert "not the champion (v2" in plain.stderr and _champion(runs, target.name) == "2"


def test_the_gate_refuses_to_compare_other_data_unless_forced(invoke, runs, target) -> None:
    assert invoke(*target(runs.ridge, "--promote")).exit_code == 0
    refused = invoke(*target(runs.other_data, "--promote"))
    assert refused.exit_code == 1, refused.output
    line = _error(refused)
    assert "dataset sha256 differs" in line and "split hash differs" in line
    assert "not comparable" in line and "--force" in line
    assert _champion(runs, target.name) == "1"

    forced = invoke(*target(runs.other_data, "--promote", "--force", "--json"))
    assert forced.exit_code == 0, forced.output
    body = json.loads(forced.stdout)
    assert body["gate"]["forced"] is True and body["gate"]["verdict"] == "incomparable"
    assert _champion(runs, target.name) == body["version"]
    from mlflow import MlflowClient

    tag = MlflowClient(runs.tracking_uri).get_model_version(
        target.name, body["version"]).tags["revcli.promotion"]
    assert tag.startswith("promoted by --force over the gate: dataset sha256 differs")


def test_a_leaky_run_is_not_promoted_silently(invoke, s3_env, bucket, runs, target) -> None:
    result = invoke(*target(runs.leaky, "--promote"))
    assert result.exit_code == 1, result.output
    line = _error(result)
    assert "leaking feature(s) engagement_depth" in line
    assert "--drop-feature engagement_depth" in line
    listing = s3_env.client().list_objects_v2(Bucket=bucket)
    assert listing.get("KeyCount", 0) == 0  # nothing uploaded

    forced = invoke(*target(runs.leaky, "--promote", "--force"))
    assert forced.exit_code == 0, forced.output
    assert "leaking feature(s) engagement_depth" in forced.stderr  # said, not hidden


def test_push_refuses_a_model_file_that_changed_after_training(invoke, runs, target,
                                                               tmp_path) -> None:
    copy = tmp_path / "copy"
    shutil.copytree(runs.workspace / "models" / runs.ridge, copy / "models" / runs.ridge)
    from revcli.runs import model_path

    with open(model_path(copy / "models" / runs.ridge), "ab") as fh:  # model.skops
        fh.write(b"tampered")
    args = target(runs.ridge)
    args[args.index("--workspace") + 1] = str(copy)
    result = invoke(*args)
    assert result.exit_code == 2
    assert "the file changed after training" in _error(result)


def test_push_into_a_missing_bucket_names_it_and_registers_nothing(invoke, s3_env, runs,
                                                                   target) -> None:
    args = target(runs.ridge)
    args[args.index("--uri") + 1] = "s3://no-such-models/regression_model.pkl"
    result = invoke(*args)
    assert result.exit_code == 2
    line = _error(result)
    assert "s3://no-such-models/regression_model.pkl" in line
    assert "bucket 'no-such-models' does not exist" in line
    from mlflow import MlflowClient

    assert not MlflowClient(runs.tracking_uri).search_model_versions(f"name='{target.name}'")


def test_unknown_runs_and_metrics_are_usage_errors(invoke, runs, target) -> None:
    missing = invoke(*target("0" * 32))
    assert missing.exit_code == 2 and "no model of run" in _error(missing)
    metric = invoke(*target(runs.ridge, "--promote", "--metric", "auc"))
    assert metric.exit_code == 2 and "has no 'auc' metric" in _error(metric)
    force = invoke(*target(runs.ridge, "--force"))
    assert force.exit_code == 2 and "--promote" in force.output


def test_large_models_go_up_in_parts_with_their_metadata(s3_env, bucket, tmp_path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(11 * 1024 * 1024 + 123))
    sha = hashlib.sha256(path.read_bytes()).hexdigest()
    storage = S3Storage(s3_env.client(), multipart_threshold=5 * 1024 * 1024,
                        multipart_chunksize=5 * 1024 * 1024)
    seen = []
    storage.upload_file(path, Location(bucket, "m/big.bin"), {"sha256": sha},
                        progress=seen.append)
    info = storage.head(Location(bucket, "m/big.bin"))
    assert info.etag.endswith('-3"')  # three parts
    assert info.metadata["sha256"] == sha and info.size == path.stat().st_size
    assert sum(seen) == path.stat().st_size
    body = s3_env.client().get_object(Bucket=bucket, Key="m/big.bin")["Body"].read()
    assert hashlib.sha256(body).hexdigest() == sha


@pytest.mark.parametrize("first", ["mean", "ridge"])
def test_two_promotions_at_once_end_with_one_champion_the_better(s3_env, bucket, runs, target,
                                                                  first: str) -> None:
    """Issue 21: two `push --promote` with no champion yet, started together as real processes
    against the real `mlflow server`: exactly one champion, the better model (ridge), whichever
    starts first; the S3 key holds it; no promotion lease is left behind."""
    import subprocess
    import sys

    from mlflow import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith(("REVCLI_", "MLFLOW_"))}
    env.update(s3_env.env(), MLFLOW_DISABLE_TELEMETRY="true")
    order = [runs.mean, runs.ridge] if first == "mean" else [runs.ridge, runs.mean]
    # --margin 0: any gain promotes (the compare-and-set is tested, not the noise gate)
    procs = [subprocess.Popen([sys.executable, "-m", "revcli",
                               *target(run_id, "--promote", "--margin", "0")],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              stdin=subprocess.DEVNULL) for run_id in order]
    outcomes = [(p.wait(180), p.stderr.read().decode()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert all(code in (0, 1) for code, _ in outcomes), outcomes
    client = MlflowClient(runs.tracking_uri)
    model = client.get_registered_model(target.name)
    assert list(model.aliases) == ["champion"]
    assert client.get_model_version(target.name, model.aliases["champion"]).run_id == runs.ridge
    head = s3_env.client().head_object(Bucket=bucket, Key="regression_model.pkl")
    assert head["Metadata"]["revcli-run-id"] == runs.ridge
    leases = client.search_registered_models(f"name = '{target.name}.promotion-lease'")
    assert not leases
