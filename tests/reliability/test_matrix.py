"""Issue 8: revcli is safe to run unattended. A table-driven matrix of faults and attacks.

Each case is data (:class:`~tests.reliability.harness.Case`): a setup that breaks one thing in a
private copy of a small workspace (3,000 demo sessions, one ridge run, one one-trial tune study),
a command line, and what must happen. One parametrized test runs them all; see
``tests/reliability/harness.py`` for the checks every case gets (exit code, one ``Error:`` line,
no traceback, the workspace / MLflow store / study database unchanged by a failed command).

Classes: bad_table, bad_settings, substitution, filesystem, tracking, hostile_model,
hostile_string, secrets, signals, corruption, s3, parts.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.integration.servers import free_port
from tests.reliability import setups as S
from tests.reliability.harness import (
    Case,
    Ctx,
    Outcome,
    copy_template,
    describe,
    fail_on,
    judge,
    run_inprocess,
    run_subprocess,
    sha256_file,
    show,
    snapshot,
)

pytestmark = pytest.mark.reliability

TRAIN = "train -e ridge --no-plots"
TUNE = "tune -e ridge -n 1 -j 1 --no-plots"
NO_RETRY = (("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0"),)
WIDE = (("COLUMNS", "250"),)
FAKE_AWS = (("AWS_ACCESS_KEY_ID", "AKIAFAKE"), ("AWS_SECRET_ACCESS_KEY", "fake-secret"),
            ("AWS_DEFAULT_REGION", "us-east-1"), ("AWS_EC2_METADATA_DISABLED", "true"))
ESC, BEL = "\x1b", "\x07"
CLEAR = "\x1b[2J"
OSC = "\x1b]0;pwned\x07"
# Rich markup that, if interpreted, turns into "m-x-m": the literal must show, "m-x-m" never.
MARKUP = "m-[red]x[/red]-m"
MARKUP_READ = "m-x-m"
SECRET = "s3cr3t"


def C(klass: str, id: str, argv: str | list[str], **kw) -> Case:
    args = tuple(shlex.split(argv) if isinstance(argv, str) else argv)
    env = kw.pop("env", ())
    if isinstance(env, dict):
        env = tuple(env.items())
    return Case(id=id, klass=klass, argv=args, env=tuple(env), **kw)


# -- checks beyond the common ones -------------------------------------------------------------

def says_demo_in_json(ctx: Ctx, outcome: Outcome) -> list[str]:
    """--json must say the demo set was generated somewhere besides the dataset's own source."""
    try:
        payload = json.loads(outcome.stdout)
    except ValueError:
        return [f"stdout is not one JSON object: {outcome.stdout[:80]!r}"]
    rest = {k: v for k, v in payload.items() if k != "dataset"}
    if "demo" not in json.dumps(rest).lower():
        return ["nothing in the --json result (outside dataset.source) says the demo set was "
                "generated"]
    return []


def trained_on_what_it_names(ctx: Ctx, outcome: Outcome) -> list[str]:
    """A dataset changed after caching: detected (exit 2) or re-hashed, never trained on under
    its old sha256."""
    if outcome.exit_code != 0:
        return []
    try:
        dataset = json.loads(outcome.stdout)["dataset"]
    except (ValueError, KeyError):
        return ["exit 0 without a JSON result"]
    actual = sha256_file(Path(dataset["path"]))
    if actual != dataset["sha256"]:
        return [f"trained on a file whose sha256 is {actual[:12]} under the recorded "
                f"{dataset['sha256'][:12]} (exit 0)"]
    return []


def switch_is_said(ctx: Ctx, outcome: Outcome) -> list[str]:
    """A successful --data that made the file the current dataset must say so (-q --json)."""
    current = json.loads((ctx.ws / "current.json").read_text()).get("dataset")
    if current != sha256_file(ctx.root / "other.parquet"):
        return []  # it did not switch: nothing to say
    try:
        rest = {k: v for k, v in json.loads(outcome.stdout).items() if k != "dataset"}
    except ValueError:
        rest = {}
    if "current" in outcome.stderr.lower() or "current" in json.dumps(rest).lower():
        return []
    return ["--data made other.parquet the current dataset without saying so (stderr and "
            "--json are silent about it)"]


def store_usable_after_freeing_space(ctx: Ctx, outcome: Outcome) -> list[str]:
    """A store whose creation was cut short by a full disk must not stay broken."""
    (ctx.root / "disk" / "filler").unlink()
    again = run_inprocess(["compare", "runs", "--json"], {"REVCLI_WORKSPACE": str(ctx.ws)}, 60,
                          ctx.monkeypatch)
    if again.exit_code != 0 or again.exception:
        return [f"after freeing space `compare runs` still fails: exit {again.exit_code}: "
                f"{describe(again)[:160]}"]
    return []


# -- the matrix --------------------------------------------------------------------------------

def _bad_tables() -> list[Case]:
    k = "bad_table"
    conv = S.on_converters
    cases = [
        ("inf-target", S.table("bad.parquet", conv("revenue", np.inf))),
        ("neg-inf-feature", S.table("bad.parquet", conv("hour_of_day", -np.inf, float))),
        ("f32-overflow-target", S.table("bad.parquet", conv("revenue", 1e39))),
        ("f32-overflow-feature", S.table("bad.parquet", conv("engagement_depth", 1e39, float))),
        ("nan-target", S.table("bad.parquet", S.set_value("revenue", np.nan))),
        ("string-target", S.table("bad.parquet",
                                  lambda f: f.assign(revenue=f.revenue.astype(str)))),
        ("duration-feature", S.table("bad.parquet", S.add_column(
            "spent", lambda f: np.arange(len(f)).astype("timedelta64[s]")))),
        ("empty", S.table("bad.parquet", lambda f: f.iloc[:0])),
        ("no-revenue", S.table("bad.parquet", lambda f: f.drop(columns="revenue"))),
        ("no-converters", S.table("bad.parquet", lambda f: f.assign(
            revenue=0.0, is_ordered=0))),
        ("negative-revenue", S.table("bad.parquet", S.set_value("revenue", -5.0))),
        ("is-ordered-disagrees", S.table("bad.parquet", S.set_value("is_ordered", 1,
                                                                    slice(-5, None)))),
        ("not-parquet", S.raw_file("bad.parquet", b"session,revenue\n1,0.0\n")),
        ("truncated-parquet", S.truncated_parquet("bad.parquet")),
        ("directory", S.directory("bad.parquet")),
    ]
    out = [C(k, f"train-{name}", f"{TRAIN} --data bad.parquet", setup=setup)
           for name, setup in cases]
    # the contract gate of fetch: nothing bad is cached or made current
    for name in ("inf-target", "neg-inf-feature", "f32-overflow-target", "f32-overflow-feature",
                 "not-parquet"):
        setup = dict(cases)[name]
        out.append(C(k, f"fetch-{name}", "fetch bad.parquet", setup=setup))
    # Tables the contract takes since it learned column types (revcli.features): gaps in a
    # feature, a text column (a category), a timestamp (calendar features).
    for name, setup in (
            ("nan-feature", S.table("ok.parquet", conv("hour_of_day", np.nan, float))),
            ("string-feature", S.table("ok.parquet", S.add_column("channel", "web"))),
            ("datetime-feature", S.table("ok.parquet", S.add_column(
                "when", lambda f: np.datetime64("2024-01-01") + np.arange(len(f)).astype(
                    "timedelta64[s]"))))):
        out.append(C(k, f"train-{name}", f"{TRAIN} --data ok.parquet", setup=setup, exit=0))
    out += [
        C(k, "train-missing-file", f"{TRAIN} --data nope.parquet"),
        # one converter: the stratified split cannot work
        C(k, "train-one-converter", f"{TRAIN} --data bad.parquet", setup=S.table(
            "bad.parquet", lambda f: f.assign(revenue=np.where(np.arange(len(f)) == 0, 50.0, 0.0),
                                              is_ordered=(np.arange(len(f)) == 0).astype(int)))),
        # every session ordered: the two_stage classifier has one class
        C(k, "train-all-converters-two-stage", "train -s two_stage -e ridge --no-plots "
          "--data bad.parquet", setup=S.table("bad.parquet", lambda f: f.assign(
              revenue=59.99, is_ordered=1))),
        C(k, "tune-inf-feature", f"{TUNE} --data bad.parquet",
          setup=S.table("bad.parquet", conv("hour_of_day", np.inf, float))),
        C(k, "predict-inf-feature", "predict --run {run} --data bad.parquet --out o.parquet",
          setup=S.table("bad.parquet", S.set_value("hour_of_day", np.inf, dtype=float))),
        C(k, "evaluate-inf-feature", "evaluate --run {run} --data bad.parquet --no-plots "
          "--no-track", setup=S.table("bad.parquet", conv("hour_of_day", np.inf, float))),
    ]
    return out


def _bad_settings() -> list[Case]:
    k = "bad_settings"
    cfg = S.write_root
    return [
        C(k, "xgb-max-depth-abc", "train --no-plots -p max_depth=abc"),
        C(k, "xgb-max-depth-neg", "train --no-plots -p max_depth=-3"),
        C(k, "ridge-alpha-neg", f"{TRAIN} -p alpha=-1"),
        C(k, "xgb-n-estimators-neg", "train --no-plots -p n_estimators=-1"),
        C(k, "rf-n-estimators-neg", "train -e rf --no-plots -p n_estimators=-1"),
        C(k, "xgb-n-estimators-1e11", "train --no-plots -p n_estimators=1e11"),
        # an absurd integer: must be refused before any data is read, not fitted "forever"
        C(k, "xgb-n-estimators-int-1e11", "train --no-plots -p n_estimators=100000000000",
          timeout=6),
        C(k, "xgb-learning-rate-nan", "train --no-plots -p learning_rate=nan"),
        C(k, "classifier-max-depth-abc", "train -s two_stage --no-plots "
          "-p classifier__max_depth=abc"),
        C(k, "config-bad-toml", f"{TRAIN} --config bad.toml", setup=cfg("bad.toml", "seed = [\n")),
        C(k, "config-unknown-setting", f"{TRAIN} --config bad.toml",
          setup=cfg("bad.toml", "sede = 7\n")),
        C(k, "config-params-abc", "train --no-plots --config bad.toml",
          setup=cfg("bad.toml", "[params.xgb]\nmax_depth = \"abc\"\n")),
        C(k, "config-params-ridge-alpha-neg", f"{TRAIN} --config bad.toml",
          setup=cfg("bad.toml", "[params.ridge]\nalpha = -1\n")),
        C(k, "config-is-directory", f"{TRAIN} --config cfgdir", setup=S.directory("cfgdir")),
        C(k, "config-default-file-bad", TRAIN,
          setup=cfg("configs/revcli.toml", "workspace = \n")),
        C(k, "env-seed-x", TRAIN, env={"REVCLI_SEED": "x"}),
        C(k, "env-test-size-abc", TRAIN, env={"REVCLI_TEST_SIZE": "abc"}),
        C(k, "env-test-size-1.5", TRAIN, env={"REVCLI_TEST_SIZE": "1.5"}),
        C(k, "env-seed-negative", TRAIN, env={"REVCLI_SEED": "-1"}),
        C(k, "env-cv-folds-1", TUNE, env={"REVCLI_CV_FOLDS": "1"}),
        C(k, "env-timeout-negative", TUNE, env={"REVCLI_TIMEOUT": "-5"}),
        C(k, "env-n-trials-x", "tune -e ridge -j 1 --no-plots", env={"REVCLI_N_TRIALS": "x"}),
        C(k, "tune-n-trials-0", "tune -e ridge -n 0 -j 1 --no-plots"),
        C(k, "tune-metric-unknown", f"{TUNE} --metric nope"),
        C(k, "tune-space-bad", f"{TUNE} --space bad.toml",
          setup=cfg("bad.toml", "[ridge]\nalpha = { type = \"float\", low = 5, high = 1 }\n")),
        C(k, "threshold-2", "train -s two_stage -e ridge --no-plots --combine threshold "
          "--threshold 2"),
        C(k, "combine-unknown", "train -s two_stage -e ridge --no-plots --combine nope"),
        C(k, "demo-rows-abc", "fetch --demo", env={"REVCLI_DEMO_ROWS": "abc"}),
        C(k, "demo-rows-10", "fetch --demo --rows 10"),
        C(k, "evaluate-level-unknown", "evaluate --run {run} --no-plots --no-track --level nope"),
        C(k, "compare-since-garbage", "compare runs --since yesterdayish"),
    ]


def _substitution() -> list[Case]:
    k = "substitution"
    fix = ("revcli fetch",)
    named = ("{sha12}", "revcli fetch")
    dataset_json = "datasets/{sha}.json"
    dataset_parquet = "datasets/{sha}.parquet"
    # A small demo set wherever one would be substituted: the case fails the same way, faster.
    # Seed 7, so a substituted set is not byte-identical to the template's own (seed 0).
    demo_env = {"REVCLI_DEMO_ROWS": "3000", "REVCLI_DEMO_SEED": "7"}
    return [
        C(k, "current-json-garbage", TRAIN, env=demo_env, says=fix,
          setup=S.write_ws("current.json", "{not json")),
        C(k, "current-json-garbage-quiet-json", f"{TRAIN} -q --json", env=demo_env, says=fix,
          setup=S.write_ws("current.json", "{not json")),
        C(k, "current-json-empty", TRAIN, env=demo_env, says=fix,
          setup=S.write_ws("current.json", "")),
        C(k, "current-json-unknown-sha", TRAIN, env=demo_env, says=fix,
          setup=S.write_ws("current.json", json.dumps({"dataset": "0" * 64}))),
        C(k, "manifest-garbage", TRAIN, env=demo_env, says=named,
          setup=S.write_ws(dataset_json, "garbage")),
        C(k, "parquet-deleted", TRAIN, env=demo_env, says=named,
          setup=S.remove_ws(dataset_parquet)),
        C(k, "parquet-deleted-quiet-json", f"{TRAIN} -q --json", env=demo_env, says=named,
          setup=S.remove_ws(dataset_parquet)),
        C(k, "parquet-deleted-tune", TUNE, env=demo_env, says=named,
          setup=S.remove_ws(dataset_parquet)),
        C(k, "parquet-deleted-compare", "compare strategies --estimator ridge "
          "--strategy converting_only", env=demo_env, says=named,
          setup=S.remove_ws(dataset_parquet)),
        C(k, "parquet-deleted-evaluate", "evaluate --run {run} --no-plots --no-track",
          env=demo_env, says=("{sha12}",), setup=S.remove_ws(dataset_parquet)),
        # a workspace that never had a dataset: the demo set, said even with -q / --json
        C(k, "fresh-workspace-quiet-json", f"{TRAIN} -q --json", fresh=True, exit=0,
          env=demo_env, says=("demo",), check=says_demo_in_json),
        C(k, "fresh-workspace-quiet", f"{TRAIN} -q", fresh=True, exit=0, env=demo_env,
          says=("demo",)),
        # a --data that succeeds switches the current dataset: it must say so, even -q --json
        C(k, "data-success-switch-said", f"{TRAIN} --data other.parquet -q --json", exit=0,
          check=switch_is_said),
        # a --data that fails must not switch the current dataset
        C(k, "data-then-bad-param", f"{TRAIN} --data other.parquet -p alpha=-1"),
        C(k, "data-then-dead-tracking", f"{TRAIN} --data other.parquet "
          "--tracking-uri http://127.0.0.1:{dead}", env=NO_RETRY),
        C(k, "data-then-bad-storage-tune", f"{TUNE} --data other.parquet "
          "--storage sqlite:////nonexistent-dir/optuna.db"),
        C(k, "data-then-dead-tracking-compare", "compare strategies --estimator ridge "
          "--strategy converting_only --data other.parquet --tracking-uri "
          "http://127.0.0.1:{dead}", env=NO_RETRY),
    ]


def _filesystem() -> list[Case]:
    k = "filesystem"
    return [
        C(k, "ws-is-file-train", f"{TRAIN} --data t.parquet", setup=S.ws_is_file()),
        C(k, "ws-is-file-fetch", "fetch --demo --rows 3000", setup=S.ws_is_file()),
        C(k, "ws-is-file-compare", "compare runs", setup=S.ws_is_file()),
        C(k, "ws-is-file-tune", f"{TUNE} --data t.parquet", setup=S.ws_is_file()),
        C(k, "ws-below-file-train", f"{TRAIN} --data t.parquet", setup=S.ws_below_file),
        C(k, "datasets-dir-is-file", TRAIN, setup=S.chain(S.remove_ws("datasets"),
                                                          S.write_ws("datasets", "x"))),
        C(k, "readonly-train", TRAIN, setup=S.readonly()),
        C(k, "readonly-fetch", "fetch --demo --rows 3000", setup=S.readonly()),
        C(k, "readonly-tune", TUNE, setup=S.readonly()),
        C(k, "readonly-evaluate", "evaluate --run {run} --no-plots", setup=S.readonly()),
        # reading needs no writes: a read-only workspace still lists its runs
        C(k, "readonly-compare-runs-reads", "compare runs", setup=S.readonly(), exit=0),
        C(k, "readonly-predict-out", "predict --run {run} --data t.parquet --out ro/o.parquet",
          setup=S.readonly_dir("ro")),
        C(k, "full-disk-fetch", "fetch --demo --rows 3000", setup=S.full_disk_workspace()),
        C(k, "full-disk-train", TRAIN, setup=S.full_disk_workspace()),
        C(k, "full-disk-tune", TUNE, setup=S.full_disk_workspace()),
        C(k, "full-disk-predict", "predict --run {run} --data t.parquet --out {ws}/o.parquet",
          setup=S.full_disk_workspace()),
        # the store is created on a disk that fills up half-way through MLflow's migrations
        C(k, "full-disk-new-store", TRAIN, timeout=90,
          setup=S.full_disk_workspace(size="2m", leave=300_000, keep_store=False),
          check=store_usable_after_freeing_space),
        # revcli keeps its temp files in the workspace: a full TMPDIR is no fault.
        C(k, "full-tmpdir-train", TRAIN, setup=S.full_tmpdir, exit=0),
        C(k, "full-tmpdir-tune", TUNE, setup=S.full_tmpdir, exit=0),
    ]


def _tracking() -> list[Case]:
    k = "tracking"
    dead = "--tracking-uri http://127.0.0.1:{dead}"
    return [
        C(k, "garbage-db-train", TRAIN, setup=S.garbage_db()),
        C(k, "garbage-db-compare", "compare runs", setup=S.garbage_db()),
        C(k, "garbage-db-evaluate", "evaluate --run {run} --no-plots", setup=S.garbage_db()),
        C(k, "garbage-db-tune", TUNE, setup=S.garbage_db()),
        C(k, "truncated-db-train", TRAIN, setup=S.truncate_ws("mlflow.db")),
        C(k, "db-is-directory-train", TRAIN, timeout=10,
          setup=S.chain(S.remove_ws("mlflow.db"), lambda ctx: (ctx.ws / "mlflow.db").mkdir())),
        C(k, "db-unknown-schema-train", TRAIN, setup=S.unknown_schema),
        C(k, "locked-db-train", TRAIN, setup=S.lock_sqlite("mlflow.db"), timeout=40),
        # the real retry behaviour, once; the other dead-server cases skip MLflow's retries
        C(k, "dead-server-train", f"{TRAIN} {dead}", timeout=40),
        C(k, "dead-server-compare", f"compare runs {dead}", env=NO_RETRY),
        C(k, "dead-server-evaluate", f"evaluate --run {{run}} --no-plots {dead}", env=NO_RETRY),
        C(k, "dead-server-tune", f"{TUNE} {dead}", env=NO_RETRY),
        C(k, "bad-scheme-train", f"{TRAIN} --tracking-uri foo://bar"),
        C(k, "garbage-study-db-tune", TUNE, setup=S.garbage_db("studies/optuna.db")),
        # a subprocess: blocked inside sqlite, the command is deaf to an in-process timeout
        C(k, "locked-study-db-tune", TUNE, setup=S.lock_sqlite("studies/optuna.db"), timeout=12,
          subprocess=True),
        C(k, "dead-postgres-tune", f"{TUNE} --storage postgresql://u@127.0.0.1:{{dead}}/db"),
    ]


def _hostile_models() -> list[Case]:
    k = "hostile_model"
    data = "--data t.parquet"
    ev = f"evaluate --no-plots --no-track {data}"
    pr = f"predict {data} --out o.parquet"
    evil = "evil/model.joblib"
    kw = {"check": S.no_marker}
    foreign = S.evil_skops("evil/model.skops")
    return [
        # skops: a file with a type off revcli's list is refused naming it, --trust or not
        C(k, "evaluate-skops-foreign-type", f"{ev} --model evil/model.skops", setup=foreign,
          says=("does not trust",), **kw),
        C(k, "predict-skops-foreign-type-trust", f"{pr} --model evil/model.skops --trust",
          setup=foreign, says=("does not trust",), **kw),
        C(k, "evaluate-model-no-sidecar", f"{ev} --model {evil}", setup=S.evil_file(evil), **kw),
        C(k, "evaluate-model-forged-model-json", f"{ev} --model {evil}",
          setup=S.evil_file(evil, "model.json"), **kw),
        C(k, "evaluate-model-forged-same-stem-json", f"{ev} --model evil/x.joblib",
          setup=S.evil_file("evil/x.joblib", "x.json"), **kw),
        C(k, "evaluate-model-forged-push-metadata", f"{ev} --model evil/regression_model.pkl",
          setup=S.evil_file("evil/regression_model.pkl", "regression_model.json",
                            push_style=True), **kw),
        C(k, "predict-model-no-sidecar", f"{pr} --model {evil}", setup=S.evil_file(evil), **kw),
        C(k, "predict-model-forged-model-json", f"{pr} --model {evil}",
          setup=S.evil_file(evil, "model.json"), **kw),
        C(k, "evaluate-fake-run-dir", f"{ev} --run {S.FAKE_RUN}", setup=S.evil_run_dir(), **kw),
        C(k, "evaluate-fake-run-dir-holdout", f"evaluate --no-plots --no-track --run "
          f"{S.FAKE_RUN}", setup=S.evil_run_dir(), **kw),
        C(k, "predict-fake-run-dir", f"{pr} --run {S.FAKE_RUN}", setup=S.evil_run_dir(), **kw),
        C(k, "predict-fake-run-prefix", f"{pr} --run {S.FAKE_RUN[:8]}",
          setup=S.evil_run_dir(), **kw),
        C(k, "predict-fake-run-dir-no-meta", f"{pr} --run {S.FAKE_RUN}",
          setup=S.evil_run_dir(with_meta=False), **kw),
        # a real run's directory with its model swapped and model.json rewritten to match
        C(k, "evaluate-real-run-swapped", f"{ev} --run {{run}}", setup=S.evil_run_dir("{run}"),
          **kw),
        C(k, "predict-real-run-swapped", f"{pr} --run {{run}}", setup=S.evil_run_dir("{run}"),
          **kw),
        # issue 21: `runs sync` loads a pending model only when its run in the store vouches
        C(k, "sync-unlogged-pending", "runs sync", setup=S.evil_pending(),
          says=("--trust",), **kw),
        C(k, "sync-pending-of-a-real-run-swapped", "runs sync", setup=S.evil_pending("{run}"),
          says=("is not the model",), **kw),
        C(k, "sync-pending-of-an-unknown-run", "runs sync", setup=S.evil_pending(S.FAKE_RUN),
          **kw),
        C(k, "sync-garbage-pending", "runs sync", setup=S.evil_pending(garbage=True),
          says=("pending.json is not a pending run",), **kw),
    ]


def _hostile_strings() -> list[Case]:
    k = "hostile_string"
    no_ctl = (ESC, BEL)
    markup = {"shows": (MARKUP,), "never": (MARKUP_READ,)}
    extra = lambda name: S.table("h.parquet", S.add_column(name, 1.0))  # noqa: E731
    text_col = lambda name: S.table("h.parquet", S.add_column(name, "x"))  # noqa: E731
    flags = S.add_column("promo" + OSC, lambda f: (np.arange(len(f)) % 3 == 0))
    both = lambda f: S.add_column(MARKUP, lambda g: np.arange(len(g)) % 2 == 0)(  # noqa: E731
        S.add_column("promo" + CLEAR, lambda g: np.arange(len(g)) % 3 == 0)(f))
    return [
        C(k, "predict-ignored-column-clear", "predict --run {run} --data h.parquet --out o.parquet",
          setup=extra("x" + CLEAR), exit=0, never=no_ctl, env=WIDE),
        C(k, "predict-ignored-column-osc", "predict --run {run} --data h.parquet --out o.parquet",
          setup=extra("x" + OSC), exit=0, never=no_ctl, env=WIDE),
        C(k, "predict-ignored-column-markup", "predict --run {run} --data h.parquet --out "
          "o.parquet", setup=extra(MARKUP), exit=0, **markup, env=WIDE),
        # a text column is a category now: trained on, and its hostile name never printed raw
        C(k, "train-text-column-clear", f"{TRAIN} --data h.parquet", setup=text_col(CLEAR),
          exit=0, never=no_ctl, env=WIDE),
        C(k, "train-text-column-osc", f"{TRAIN} --data h.parquet", setup=text_col(OSC),
          exit=0, never=no_ctl, env=WIDE),
        C(k, "train-text-column-markup", f"{TRAIN} --data h.parquet", setup=text_col(MARKUP),
          exit=0, never=(MARKUP_READ,), env=WIDE),
        C(k, "train-feature-osc", f"{TRAIN} --data h.parquet", unchanged=False,
          setup=S.table("h.parquet", flags), exit=0, never=no_ctl, env=WIDE),
        C(k, "evaluate-segment-labels", "evaluate --run {hrun} --no-plots --no-track",
          setup=S.train_on(both), exit=0, never=(*no_ctl, MARKUP_READ), shows=(MARKUP,),
          env=WIDE),
        C(k, "compare-run-name-osc", "compare runs", setup=S.rename_run("r" + OSC), exit=0,
          never=no_ctl, env=WIDE),
        C(k, "compare-run-name-markup", "compare runs", setup=S.rename_run(MARKUP), exit=0,
          **markup, env=WIDE),
        C(k, "compare-run-name-clear-md", "compare runs --format md",
          setup=S.rename_run("r" + CLEAR), exit=0, never=no_ctl, env=WIDE),
        C(k, "tune-study-name-markup", ["tune", "-e", "ridge", "-n", "1", "-j", "1",
                                        "--no-plots", "--study", MARKUP],
          exit=0, **markup, env=WIDE),
        C(k, "tune-study-name-clear", ["tune", "-e", "ridge", "-n", "1", "-j", "1",
                                       "--no-plots", "--study", "s" + CLEAR],
          exit=0, never=no_ctl, env=WIDE),
        C(k, "missing-data-path-clear", ["train", "-e", "ridge", "--data", CLEAR + "x.parquet"],
          never=no_ctl),
        C(k, "experiment-markup", ["compare", "runs", "--experiment", MARKUP], **markup),
        C(k, "fetch-list-source-osc", "datasets list", setup=S.register_source("d" + OSC +
                                                                             ".parquet"),
          exit=0, never=no_ctl, env=WIDE, subprocess=True),
    ]


def _secrets() -> list[Case]:
    k = "secrets"
    endpoint = {"REVCLI_ENDPOINT_URL": f"http://user:{SECRET}@host:9000"}
    storage = {"REVCLI_STORAGE": f"postgresql://u:{SECRET}@h/db"}
    never = (SECRET,)
    return [
        C(k, "config-json-endpoint", "config --json", env=endpoint, exit=0, never=never),
        C(k, "config-json-storage", "config --json", env=storage, exit=0, never=never),
        C(k, "config-table-both", "config", env={**endpoint, **storage, "COLUMNS": "250"},
          exit=0, never=never),
        C(k, "config-json-tracking-uri", "config --json", exit=0, never=never,
          env={"MLFLOW_TRACKING_URI": f"http://u:{SECRET}@h:5000"}),
        C(k, "config-json-aws-endpoint", "config --json", exit=0, never=never,
          env={"AWS_ENDPOINT_URL_S3": f"http://u:{SECRET}@h:9000"}),
        C(k, "config-json-file", "config --json", exit=0, never=never,
          setup=S.write_root("configs/revcli.toml", f'endpoint_url = "http://u:{SECRET}@h:9000"'
                             f'\nstorage = "postgresql://u:{SECRET}@h/db"\n')),
        C(k, "train-dead-tracking-uri", f"{TRAIN} --tracking-uri "
          f"http://u:{SECRET}@127.0.0.1:{{dead}}", env=NO_RETRY, never=never),
        C(k, "tune-dead-storage", f"{TUNE} --storage postgresql://u:{SECRET}@127.0.0.1:{{dead}}/db",
          never=never),
        C(k, "fetch-dead-endpoint-userinfo", "fetch s3://bucket/key.parquet --endpoint-url "
          f"http://u:{SECRET}@127.0.0.1:{{dead}}", env=FAKE_AWS, never=never),
        C(k, "compare-dead-tracking-uri", f"compare runs --tracking-uri "
          f"http://u:{SECRET}@127.0.0.1:{{dead}}", env=NO_RETRY, never=never),
    ]


def _signals() -> list[Case]:
    k = "signals"
    out = [C(k, f"train-sigint-{t}s", TRAIN, subprocess=True, sigint_after=t, exit=130,
             timeout=30) for t in (0.1, 0.2, 0.3)]
    out.append(C(k, "fetch-sigint-0.2s", "fetch --demo --rows 3000", subprocess=True,
                 sigint_after=0.2, exit=130, timeout=30))
    out.append(C(k, "tune-sigint-0.3s", TUNE, subprocess=True, sigint_after=0.3, exit=130,
                 timeout=30))
    # Issue 21, class 3: SIGTERM (Airflow, systemd, Kubernetes) and SIGHUP handled like Ctrl-C,
    # sent in the middle of the work: exit 143 / 129, no run or trial RUNNING, no temp file.
    TERM, HUP = signal.SIGTERM, signal.SIGHUP
    codes = {TERM: 143, HUP: 129}
    long_tune = "tune -e ridge -n 500 --no-plots"
    predict = "predict --run {run} --data t.parquet --out o.parquet --batch-rows 1"
    for sig, word in ((TERM, "sigterm"), (HUP, "sighup")):
        kw = {"subprocess": True, "send": sig, "exit": codes[sig], "timeout": 90,
              "check": S.left_nothing_running}
        out += [
            C(k, f"train-{word}-0.2s", TRAIN, sigint_after=0.2, **kw),
            C(k, f"train-{word}-while-logging", TRAIN, signal_when=S.a_run_is_running,
              unchanged=False, **kw),
            C(k, f"tune-{word}-mid-trial", f"{long_tune} -j 1", signal_when=S.a_trial_is_running,
              unchanged=False, **kw),
            C(k, f"predict-{word}-mid-write", predict, signal_when=S.a_temp_file_exists, **kw),
        ]
    out += [
        C(k, "tune-sigterm-mid-trial-two-threads", f"{long_tune} -j 2", subprocess=True,
          send=TERM, exit=143, timeout=90, check=S.left_nothing_running, unchanged=False,
          signal_when=S.a_trial_is_running),
        C(k, "train-rf-sigterm-while-logging", "train -e rf --no-plots -p n_estimators=20",
          subprocess=True, send=TERM, exit=143, timeout=90, check=S.left_nothing_running,
          unchanged=False, signal_when=S.a_run_is_running),
        C(k, "compare-strategies-sigterm-while-logging", "compare strategies --estimator "
          "ridge", subprocess=True, send=TERM, exit=143, timeout=120,
          check=S.left_nothing_running, unchanged=False, signal_when=S.a_run_is_running),
        C(k, "evaluate-sigterm-while-logging", "evaluate --run {run}", subprocess=True,
          send=TERM, exit=143, timeout=90, check=S.plots_whole, unchanged=False,
          signal_when=S.a_run_is_running),
        C(k, "fetch-demo-sigterm-mid-write", "fetch --demo --rows 400000", subprocess=True,
          send=TERM, exit=143, timeout=90, check=S.left_nothing_running,
          signal_when=S.a_temp_file_exists),
        C(k, "fetch-s3-sigterm-mid-download", "fetch s3://{bucket}/big.parquet "
          "--endpoint-url {s3}", s3=True, setup=S.big_object("big.parquet"), subprocess=True,
          send=TERM, exit=143, timeout=90, check=S.left_nothing_running,
          signal_when=S.a_temp_file_exists),
        C(k, "fetch-s3-sighup-mid-download", "fetch s3://{bucket}/big.parquet "
          "--endpoint-url {s3}", s3=True, setup=S.big_object("big.parquet"), subprocess=True,
          send=HUP, exit=129, timeout=90, check=S.left_nothing_running,
          signal_when=S.a_temp_file_exists),
    ]
    return out


def broken_in_json(ctx: Ctx, outcome: Outcome) -> list[str]:
    try:
        broken = json.loads(outcome.stdout).get("broken") or []
    except ValueError:
        return ["stdout is not JSON"]
    if not any(b.get("dataset") == ctx.sha for b in broken):
        return [f"--json does not list dataset {ctx.sha[:12]} as broken"]
    return []


def _corruption() -> list[Case]:
    k = "corruption"
    q = f"{TRAIN} -q --json"
    return [
        C(k, "dataset-replaced-in-place", q, exit=None,
          setup=S.replace_dataset_with("other.parquet"), check=trained_on_what_it_names),
        C(k, "dataset-rewritten-mtime-kept", q, exit=None,
          setup=S.revenue_doubled_same_size, check=trained_on_what_it_names),
        C(k, "dataset-replaced-evaluate", "evaluate --run {run} --no-plots --no-track",
          setup=S.replace_dataset_with("other.parquet")),
        C(k, "model-appended-evaluate", "evaluate --run {run} --no-plots --no-track",
          setup=S.append_byte("models/{run}/model.skops")),
        C(k, "model-appended-predict", "predict --run {run} --data t.parquet --out o.parquet",
          setup=S.append_byte("models/{run}/model.skops")),
        # Issue 21, class 7: a page damaged in place (one byte of an int32 page, the file still
        # decodes) fails its page checksum instead of training or scoring on a wrong value.
        C(k, "page-flipped-train-data", f"{TRAIN} --data c.parquet",
          setup=S.checksummed_then_flipped("c.parquet"), says=("c.parquet",)),
        C(k, "page-flipped-predict", "predict --run {run} --data c.parquet --out o.parquet",
          setup=S.checksummed_then_flipped("c.parquet"), says=("c.parquet",)),
        C(k, "page-flipped-evaluate", "evaluate --run {run} --data c.parquet --no-plots "
          "--no-track", setup=S.checksummed_then_flipped("c.parquet"), says=("c.parquet",)),
        C(k, "page-flipped-fetch", "fetch c.parquet", setup=S.checksummed_then_flipped(
            "c.parquet"), says=("c.parquet",)),
        C(k, "page-flipped-cache-train", TRAIN, setup=S.flip_cached_page),
        # Issue 21, class 7: `datasets list` says a broken dataset is broken, never hides it.
        C(k, "manifest-garbage-list", "datasets list", exit=0, unchanged=True,
          setup=S.write_ws("datasets/{sha}.json", "garbage"), says=("{sha12}", "broken")),
        C(k, "manifest-garbage-list-json", "datasets list --json", exit=0, unchanged=True,
          setup=S.write_ws("datasets/{sha}.json", "garbage"), check=broken_in_json),
        C(k, "parquet-missing-list", "datasets list", exit=0, unchanged=True,
          setup=S.remove_ws("datasets/{sha}.parquet"), says=("{sha12}", "missing")),
        C(k, "manifest-missing-list", "datasets list", exit=0, unchanged=True,
          setup=S.remove_ws("datasets/{sha}.json"), says=("{sha12}", "no manifest")),
        # The model itself is verified by its MLflow run; a damaged model.json is said, and the
        # run's record stands in for it.
        C(k, "model-json-garbage-predict", "predict --run {run} --data t.parquet --out o.parquet",
          setup=S.write_ws("models/{run}/model.json", "{garbage"), exit=0,
          says=("model.json",)),
    ]


def _s3() -> list[Case]:
    k = "s3"
    return [
        C(k, "fetch-dead-endpoint", "fetch s3://bucket/key.parquet --endpoint-url "
          "http://127.0.0.1:{dead}", env=FAKE_AWS),
        C(k, "fetch-endpoint-not-a-url", "fetch s3://bucket/key.parquet --endpoint-url "
          "not-a-url", env=FAKE_AWS),
        C(k, "fetch-bad-uri", "fetch s3:///key-without-bucket.parquet", env=FAKE_AWS),
        C(k, "push-dead-endpoint", "push --run {run} --endpoint-url http://127.0.0.1:{dead}",
          env=FAKE_AWS),
    ]


def _drift() -> list[Case]:
    """Issue 21, class 4: a table that drifted from the one the model was trained on (ridge,
    trained without gaps, with bool flags). Handled as the encoding defines (a flag as text is
    parsed) or refused in one line naming the column; never an unexpected exception."""
    k = "drift"
    conv = S.on_converters
    pr = "predict --run {run} --data d.parquet --out o.parquet"
    ev = "evaluate --run {run} --data d.parquet --no-plots --no-track"
    gap = S.table("d.parquet", conv("hour_of_day", np.nan, float))
    stamp_gap = S.table("d.parquet", conv("created_at", None))
    flags = S.table("d.parquet", S.as_text_flags("is_weekend"))
    flags_lower = S.table("d.parquet", S.as_text_flags("device_type_mobile", "true", "false"))
    not_a_flag = S.table("d.parquet", S.chain_mutations(
        S.as_text_flags("is_weekend"), conv("is_weekend", "maybe")))
    dup = S.duplicated_column("d.parquet", "hour_of_day")
    return [
        # a number gap training never saw is imputed with the training median, which every
        # model now learns for every number (a model from before that refuses it, naming it)
        C(k, "predict-gap-ridge", pr, setup=gap, exit=0),
        C(k, "evaluate-gap-ridge", ev, setup=gap, exit=0),
        C(k, "predict-timestamp-gap-ridge", pr, setup=stamp_gap, says=("'created_at'",)),
        C(k, "evaluate-timestamp-gap-ridge", ev, setup=stamp_gap, says=("'created_at'",)),
        C(k, "predict-flag-as-text", pr, setup=flags, exit=0, check=same_predictions),
        C(k, "predict-flag-as-lowercase-text", pr, setup=flags_lower, exit=0,
          check=same_predictions),
        C(k, "evaluate-flag-as-text", ev, setup=flags, exit=0),
        C(k, "predict-flag-not-a-flag", pr, setup=not_a_flag, says=("'is_weekend'", "maybe")),
        C(k, "evaluate-flag-not-a-flag", ev, setup=not_a_flag, says=("'is_weekend'",)),
        C(k, "predict-duplicated-column", pr, setup=dup, says=("'hour_of_day'",)),
        C(k, "evaluate-duplicated-column", ev, setup=dup, says=("hour_of_day",)),
    ]


def same_predictions(ctx: Ctx, outcome: Outcome) -> list[str]:
    """Predictions of the drifted table equal those of the table the model knows."""
    import pandas as pd

    again = run_inprocess(["predict", "--run", ctx.run, "--data", "t.parquet", "--out",
                           "ref.parquet"], {"REVCLI_WORKSPACE": str(ctx.ws)}, 60,
                          ctx.monkeypatch)
    if again.exit_code != 0:
        return [f"the reference predict failed: {describe(again)[:160]}"]
    got = pd.read_parquet(ctx.root / "o.parquet")["prediction"].to_numpy()
    want = pd.read_parquet(ctx.root / "ref.parquet")["prediction"].to_numpy()
    if len(got) != len(want) or not np.allclose(got, want):
        return ["the drifted table's predictions differ from the original table's"]
    return []


def _concurrency() -> list[Case]:
    """Issue 21, class 2: two `push --promote` with no champion yet, started together (real
    processes, the workspace's sqlite store, the real S3 gateway), end with exactly one
    champion, the better one: the template's ridge run and a mean run on the same dataset,
    split and population (the check reads which has the lower rmse), in both orders."""
    k = "concurrency"
    # --margin 0: any gain promotes, so the race is about the compare-and-set, not the noise
    # gate (on these 3,000 rows ridge's gain over the mean is within the noise)
    push = "push --promote --margin 0 --endpoint-url {s3} --uri s3://{bucket}/m.pkl --run"

    def names_template(ctx: Ctx) -> None:
        ctx.values["ridge"] = ctx.run

    mean = S.train_current("mean", "mean")
    kw = {"s3": True, "subprocess": True, "exit": (0, 1), "unchanged": False, "timeout": 120,
          "check": S.one_champion_the_better("ridge", "mean", "m.pkl")}
    return [
        C(k, f"push-promote-race-{a}-beside-{b}{n}", f"{push} {{{b}}}",
          setup=S.chain(names_template, mean), beside=f"{push} {{{a}}}", **kw)
        for a, b in (("ridge", "mean"), ("mean", "ridge")) for n in ("", "-again")
    ]


def _failed_changes_nothing() -> list[Case]:
    """Issue 21, class 6: a failed command changes nothing -- no RUNNING run, no half-written
    set of plots, no object key outside what was meant, no registry version pointing at an
    object that is not there."""
    k = "failed_command"
    push = "push --run {run} --endpoint-url {s3} --uri s3://{bucket}/m.pkl"
    s3 = {"s3": True}
    return [
        C(k, "push-key-dotdot", f"{push} --key ../../etc/passwd", says=("'..'",), **s3),
        C(k, "push-key-dotdot-inside", f"{push} --key models/../../x.pkl", says=("'..'",), **s3),
        C(k, "push-key-absolute", f"{push} --key /etc/passwd", says=("absolute",), **s3),
        C(k, "push-uri-dotdot", "push --run {run} --endpoint-url {s3} --uri "
          "s3://{bucket}/../x.pkl", says=("'..'",), **s3),
        C(k, "push-key-empty-segment", f"{push} --key models//x.pkl", **s3),
        # the bucket answers, then every request fails: the upload fails, nothing registered
        C(k, "push-upload-fails-registers-nothing", "push --run {run} --endpoint-url {proxy} "
          "--uri s3://{bucket}/m.pkl", setup=S.proxy_in_front(1),
          check=S.no_registered_version, **s3),
        C(k, "push-promote-upload-fails-registers-nothing", "push --run {run} --promote "
          "--endpoint-url {proxy} --uri s3://{bucket}/m.pkl", setup=S.proxy_in_front(1),
          unchanged=False, check=S.no_registered_version, **s3),  # the lease came and went
        # a pending run whose model file is gone: refused, no run left RUNNING
        C(k, "sync-pending-model-missing", "runs sync --trust",
          setup=S.pending_without_model(), check=S.left_nothing_running),
        C(k, "sync-pending-of-a-run-model-missing", "runs sync",
          setup=S.pending_without_model("{run}"), check=S.left_nothing_running),
        C(k, "full-disk-train-rf", "train -e rf --no-plots -p n_estimators=50", timeout=90,
          setup=S.full_disk_workspace(), unchanged=False, check=S.left_nothing_running),
        C(k, "full-disk-train-rf-plots", "train -e rf -p n_estimators=50", timeout=90,
          setup=S.full_disk_workspace(), unchanged=False, check=S.plots_whole),
        *(C(k, f"full-disk-train-rf-{left // 1000}k-left", "train -e rf --no-plots -p "
            "n_estimators=50", timeout=90, setup=S.full_disk_workspace(size="64m", leave=left),
            unchanged=False, check=S.left_nothing_running)
          for left in (500_000, 1_500_000)),
        C(k, "full-disk-evaluate-plots", "evaluate --run {run}", timeout=90,
          setup=S.full_disk_workspace(leave=60_000), unchanged=False, check=S.plots_whole),
    ]


def json_error(ctx: Ctx, outcome: Outcome) -> list[str]:
    """With --json a failure still leaves stdout one JSON object: {"error": ..., ...} holding
    the Error line's text (an Airflow XCom reader gets JSON, not an empty stdout)."""
    lines = [line for line in outcome.stdout.splitlines() if line.strip()]
    if len(lines) != 1:
        return [f"stdout holds {len(lines)} lines (want one JSON object)"]
    try:
        payload = json.loads(lines[0])
    except ValueError:
        return [f"stdout is not JSON: {lines[0][:80]!r}"]
    said = [line for line in outcome.stderr.splitlines() if line.startswith("Error:")]
    if not isinstance(payload, dict) or "error" not in payload:
        return ["the JSON object has no 'error'"]
    if said and payload["error"] != said[0].removeprefix("Error: "):
        return ["the JSON error differs from the Error line"]
    if payload.get("exit_code") != outcome.exit_code:
        return [f"the JSON exit_code {payload.get('exit_code')} is not {outcome.exit_code}"]
    return []


def _decided() -> list[Case]:
    """Issue 21, class 8: what revcli decided (README "Safe to run unattended")."""
    k = "decided"
    kw = {"check": json_error}
    return [
        C(k, "json-error-train-bad-param", f"{TRAIN} --json -p alpha=-1", **kw),
        C(k, "json-error-predict-no-run", "predict --run nope --data t.parquet --out o.parquet "
          "--json", **kw),
        C(k, "json-error-push-dead-endpoint", "push --run {run} --json --endpoint-url "
          "http://127.0.0.1:{dead}", env=FAKE_AWS, **kw),
        C(k, "json-error-fetch-missing", "fetch nope.parquet --json", **kw),
        C(k, "json-error-sigterm", f"{TRAIN} --json", subprocess=True, send=signal.SIGTERM,
          signal_when=S.a_run_is_running, exit=143, unchanged=False, timeout=90, **kw),
        # a number has no unit: refused as a time column, with the conversion to make
        C(k, "time-column-is-a-number", f"{TRAIN} --split time --time-column hour_of_day",
          says=("'hour_of_day'", "not a timestamp")),
        C(k, "time-column-is-a-flag", f"{TRAIN} --split time --time-column is_weekend",
          says=("'is_weekend'", "not a timestamp")),
        # a deleted run's recipe is still read, and that it is deleted is said
        C(k, "from-run-deleted-is-said", f"{TRAIN} --from-run {{run}}", exit=0,
          setup=S.delete_template_run, says=("deleted",)),
        # a run still training is not deleted from under its command
        C(k, "runs-delete-a-running-run", "runs delete {live}",
          setup=S.running_run_of_a_live_process, says=("still RUNNING",)),
        # deleting the champion's run: allowed, and the alias that stays is said
        C(k, "runs-delete-the-champion-run-is-said", "runs delete {run}", exit=0,
          setup=S.template_run_is_champion, says=("champion", "alias")),
    ]


def _column_kinds() -> list[Case]:
    """Every Arrow column kind through every command that reads a table: refused in one line
    naming the column, or encoded (issue 18.3 / 21.5: a struct passed fetch and broke every
    later train; an all-null or decimal column failed in MLflow's signature code)."""
    k = "column_kind"
    out = []
    for kind in S.REFUSED_KINDS:
        setup = S.arrow_column("k.parquet", kind)
        says = ("'extra'",)
        out += [
            C(k, f"fetch-{kind}", "fetch k.parquet", setup=setup, says=says),
            C(k, f"train-{kind}", f"{TRAIN} --data k.parquet", setup=setup, says=says),
            C(k, f"tune-{kind}", f"{TUNE} --data k.parquet", setup=setup, says=says),
            C(k, f"compare-{kind}", "compare strategies -e ridge -s converting_only "
              "--data k.parquet", setup=setup, says=says),
            C(k, f"evaluate-{kind}", "evaluate --run {run} --data k.parquet --no-plots "
              "--no-track", setup=setup, says=says),
            # a feature the model reads, arriving as this kind at predict time
            C(k, f"predict-{kind}", "predict --run {run} --data k.parquet --out o.parquet",
              setup=S.arrow_column("k.parquet", kind, column="hour_of_day"),
              says=("'hour_of_day'",)),
        ]
    for kind in S.ENCODED_KINDS:
        setup = S.arrow_column("k.parquet", kind)
        out += [
            C(k, f"fetch-{kind}", "fetch k.parquet", setup=setup, exit=0),
            C(k, f"train-{kind}", f"{TRAIN} --data k.parquet", setup=setup, exit=0,
              check=nothing_pending),
        ]
    for kind in ("decimal", "float16", "dictionary-int", "all-null-double"):
        out.append(C(k, f"predict-feature-as-{kind}", "predict --run {run} --data k.parquet "
                     "--out o.parquet", setup=S.arrow_column("k.parquet", kind,
                                                             column="hour_of_day"), exit=0))
    return out


def nothing_pending(ctx: Ctx, outcome: Outcome) -> list[str]:
    """A run MLflow took completely: no pending.json a `runs sync` would have to replay."""
    left = sorted(str(p.relative_to(ctx.ws)) for p in ctx.ws.glob("models/*/pending.json"))
    return [f"pending runs left: {left}"] if left else []


def no_mlruns_here(ctx: Ctx, outcome: Outcome) -> list[str]:
    problems = []
    if (ctx.root / "mlruns").exists():
        problems.append("the command made ./mlruns in the directory it ran in")
    if not (ctx.root / "elsewhere" / "mlartifacts").is_dir():
        problems.append("no elsewhere/mlartifacts beside the store")
    return problems


def _named_failures() -> list[Case]:
    """Failures named as what they are (issue 18.3, 21.7)."""
    k = "named_failure"
    return [
        C(k, "from-study-never-tuned", "train -e ridge --no-plots --from-study nope",
          fresh=True, says=("no study 'nope'",), never=("unable to open",)),
        C(k, "from-study-unknown-lists-studies", "train -e ridge --no-plots --from-study nope",
          says=("no study 'nope'", "studies there:")),
        C(k, "config-not-utf8", f"{TRAIN} --config latin1.toml",
          setup=S.non_utf8_config("latin1.toml"), says=("not UTF-8",)),
        C(k, "config-default-not-utf8", TRAIN,
          setup=S.non_utf8_config("configs/revcli.toml"), says=("not UTF-8",)),
        # plots on: matplotlib's font warning must not print a column name's raw ESC
        C(k, "plot-glyph-escape", "train -e ridge --data h.parquet", unchanged=False,
          setup=S.table("h.parquet", S.add_column("promo" + CLEAR, 1.0)), exit=0,
          never=(ESC, "Glyph"), env=WIDE, subprocess=True),
        C(k, "evaluate-plot-glyph-escape", "evaluate --run {hrun} --no-track",
          setup=S.train_on(S.add_column("x" + CLEAR, lambda f: np.arange(len(f)) % 2)),
          exit=0, never=(ESC, "Glyph"), env=WIDE, subprocess=True),
        C(k, "external-sqlite-artifacts-beside-store", TRAIN, setup=S.external_sqlite_store,
          exit=0, check=no_mlruns_here),
        C(k, "full-disk-while-logging-names-the-disk", "train -e rf --no-plots",
          # room for the workspace's model (4.7 MB), not for MLflow's copy of it as well
          setup=S.full_disk_workspace(size="16m", leave=6_500_000), exit=2,
          says=("no space left",), never=("unreachable",), unchanged=False),
    ]
def orphan_removed(ctx: Ctx, outcome: Outcome) -> list[str]:
    """prune removed the killed fetch's temp directory and kept the current dataset."""
    problems = []
    if Path(ctx.values["orphan"]).exists():
        problems.append("the temp directory of the killed fetch is still there")
    if not (ctx.ws / "datasets" / f"{ctx.sha}.parquet").is_file():
        problems.append("prune removed the current dataset")
    return problems


def _parts() -> list[Case]:
    """Datasets made of parts (issue 16): a bad part is named, nothing is cached."""
    k = "parts"
    bad = "parts/dt=2015-03-02/part-0.parquet"
    conv = S.on_converters
    broken = {
        "not-parquet": (S.part_bytes(b"PAR1 not parquet"), "is not a readable parquet file"),
        "truncated": (lambda p: p.write_bytes(p.read_bytes()[:-100]),
                      "is not a readable parquet file"),
        "inf-target": (S.part_frame(lambda f: f.assign(revenue=np.inf)),
                       "breaks the data contract"),
        "negative-revenue": (S.part_frame(conv("revenue", -5.0)), "breaks the data contract"),
        "is-ordered-disagrees": (S.part_frame(S.set_value("is_ordered", 1, slice(-5, None))),
                                 "disagrees with revenue > 0"),
        "other-schema": (S.part_frame(lambda f: f.assign(hour_of_day=f.hour_of_day * 1.5)),
                         "has another schema than parts/dt=2015-03-01/part-0.parquet"),
        "missing-column": (S.part_frame(lambda f: f.drop(columns="revenue")),
                           "it lacks column 'revenue'"),
    }
    out = []
    for name, (breakage, says) in broken.items():
        out.append(C(k, f"fetch-part-{name}", "fetch parts/", setup=S.parts_dir("parts", breakage),
                     says=(f"part {bad}", says)))
    out += [
        C(k, "train-part-inf-target", f"{TRAIN} --data parts", setup=S.parts_dir(
            "parts", broken["inf-target"][0]), says=(f"part {bad}", "breaks the data contract")),
        C(k, "train-part-not-parquet", f"{TRAIN} --data parts/", setup=S.parts_dir(
            "parts", broken["not-parquet"][0]), says=(f"part {bad}",)),
        C(k, "predict-part-inf-feature", "predict --run {run} --data parts --out o.parquet",
          setup=S.parts_dir("parts", S.part_frame(S.set_value("hour_of_day", np.inf,
                                                              dtype=float)))),
        C(k, "evaluate-part-not-parquet", "evaluate --run {run} --data parts --no-plots "
          "--no-track", setup=S.parts_dir("parts", broken["not-parquet"][0])),
        C(k, "fetch-no-parts", "fetch parts/", setup=S.no_parts("parts"),
          says=("holds no parquet parts",)),
        C(k, "fetch-key-is-a-column", "fetch parts/", setup=S.chain(
            S.parts_dir("parts"), S.parts_dir("parts/revenue=1")),
          says=("the directory key 'revenue'",)),
        C(k, "full-disk-fetch-parts", "fetch parts/", setup=S.chain(
            S.parts_dir("parts"), S.full_disk_workspace()), says=("no space left on device",)),
        C(k, "readonly-fetch-parts", "fetch parts/", setup=S.chain(S.parts_dir("parts"),
                                                                 S.readonly())),
        C(k, "fetch-prefix-dead-endpoint", "fetch s3://bucket/sessions/ --endpoint-url "
          "http://127.0.0.1:{dead}", env=FAKE_AWS, says=("cannot reach the S3 endpoint",)),
        C(k, "cached-part-changed-train", f"{TRAIN} -q --json", setup=S.cached_parts(
            "parts", lambda d: S.part_bytes(b"PAR1 changed")(
                d / "dt=2015-03-02" / "part-0.parquet")),
          says=("was changed after it was cached",)),
        C(k, "cached-part-added-train", f"{TRAIN} -q --json", setup=S.cached_parts(
            "parts", lambda d: shutil.copyfile(d / "dt=2015-03-01" / "part-0.parquet",
                                               d / "dt=2015-03-01" / "part-1.parquet")),
          says=("a part dt=2015-03-01/part-1.parquet was added",)),
        C(k, "prune-killed-parts-fetch", "datasets prune", setup=S.killed_parts_fetch, exit=0,
          check=orphan_removed),
    ]
    return out


def _controls() -> list[Case]:
    """Commands that must succeed and leave everything as it was: they show the snapshot has
    no false positives (nothing changes on read, see harness.SNAPSHOT_EXCLUDE)."""
    k = "control"
    return [
        C(k, "compare-runs-reads-only", "compare runs", exit=0, unchanged=True),
        C(k, "fetch-list-reads-only", "datasets list", exit=0, unchanged=True),
        C(k, "evaluate-no-track-reads-only", "evaluate --run {run} --no-plots --no-track",
          exit=0, unchanged=True),
        C(k, "config-reads-only", "config --json", exit=0, unchanged=True),
    ]


CASES: list[Case] = [*_controls(), *_bad_tables(), *_bad_settings(), *_substitution(),
                     *_filesystem(), *_tracking(), *_hostile_models(), *_hostile_strings(),
                     *_secrets(), *_signals(), *_corruption(), *_s3(), *_parts(),
                     *_column_kinds(), *_named_failures(), *_drift(), *_decided(),
                     *_concurrency(), *_failed_changes_nothing()]


# -- fixtures and the one test -----------------------------------------------------------------

@dataclass
class Template:
    base: Path
    dir: Path  # holds ws/, t.parquet (the same demo rows), other.parquet (another demo set)
    run: str
    sha: str


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Template]:
    """3,000 demo sessions as the current dataset, one converting_only/ridge run and a
    one-trial ridge study, built once with the core functions; cases copy it."""
    from revcli import demo, settings, train, tuning
    from revcli.workspace import Workspace
    from tests.workspaces import seed_store

    base = tmp_path_factory.mktemp("reliability")
    tpl = base / "template"
    ws = tpl / "ws"
    tpl.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        for key in list(os.environ):
            if key.startswith(("REVCLI_", "MLFLOW_", "AWS_")):
                mp.delenv(key)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        mp.chdir(tpl)
        frame = S.frame()
        seed_store(ws)
        record = Workspace(ws).write_dataset(
            frame, source=f"demo:rows={S.ROWS},seed=0", extra={"demo": {"rows": S.ROWS,
                                                                         "seed": 0}})
        (base / "empty.toml").write_text("")
        s = settings.resolve(flags={"workspace": str(ws), "estimator": "ridge", "n_jobs": 1,
                                    "n_trials": 1}, config_file=base / "empty.toml", env={})
        result = train.train(s, plots=False)
        tuning.tune(s, plots=False)
        frame.to_parquet(tpl / "t.parquet", index=False)
        demo.generate(rows=S.ROWS, seed=1).to_parquet(tpl / "other.parquet", index=False)
    yield Template(base=base, dir=tpl, run=result.run_id, sha=record.sha256)


def _prepare(case: Case, template: Template, monkeypatch: pytest.MonkeyPatch) -> Ctx:
    root = template.base / "cases" / f"{case.klass}-{case.id}"
    if case.fresh:
        root.mkdir(parents=True)
        for name in ("t.parquet", "other.parquet"):
            shutil.copyfile(template.dir / name, root / name)
        from tests.workspaces import seed_store

        seed_store(root / "ws")
    else:
        copy_template(template.dir, root)
    ctx = Ctx(root=root, ws=root / "ws", run=template.run, sha=template.sha,
              values={"dead": str(free_port())}, monkeypatch=monkeypatch)
    monkeypatch.chdir(root)
    return ctx


@pytest.fixture(scope="module")
def s3_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The real S3 server of the integration tests (a JuiceFS gateway), for the cases that
    need one (``Case.s3``); started only when such a case runs."""
    from tests.integration.servers import s3_server

    with s3_server(tmp_path_factory.mktemp("s3")) as server:
        yield server


@pytest.mark.parametrize("case", CASES, ids=[f"{c.klass}:{c.id}" for c in CASES])
def test_case(case: Case, template: Template, monkeypatch: pytest.MonkeyPatch,
              request: pytest.FixtureRequest) -> None:
    ctx = _prepare(case, template, monkeypatch)
    if case.s3:
        server = request.getfixturevalue("s3_gateway")
        bucket = f"r-{uuid.uuid4().hex[:12]}"
        server.create_bucket(bucket)
        ctx.values.update(s3=server.endpoint, bucket=bucket)
        ctx.env.update(server.env())
    play(case, ctx, monkeypatch)


def play(case: Case, ctx: Ctx, monkeypatch: pytest.MonkeyPatch) -> None:
    """Set the case up in ``ctx``, run it, judge it, clean up; fail the test on a problem."""
    try:
        if case.setup is not None:
            case.setup(ctx)
        env = {"REVCLI_WORKSPACE": str(ctx.ws), **{k: ctx.fmt(v) for k, v in case.env},
               **ctx.env}
        argv = [ctx.fmt(a) for a in case.argv]
        roots = [ctx.root]
        before = snapshot(roots)
        if case.beside:
            S.start_beside(ctx, case.beside, env)
        if case.subprocess:
            when = ((lambda: case.signal_when(ctx)) if case.signal_when is not None
                    else None)
            outcome = run_subprocess(argv, env, ctx.root, case.timeout, case.sigint_after,
                                     case.send, when)
        else:
            outcome = run_inprocess(argv, env, case.timeout, monkeypatch)
        after = snapshot(roots)
        problems = judge(case, ctx, outcome, before, after)
        show(outcome)
    finally:
        for cleanup in reversed(ctx.cleanups):
            cleanup()
    fail_on(case, outcome, problems)


def test_matrix_is_big_enough() -> None:
    ids = [f"{c.klass}:{c.id}" for c in CASES]
    assert len(ids) == len(set(ids)), "case ids must be unique"
    assert len(CASES) >= 60
