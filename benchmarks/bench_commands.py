"""Benchmark of the reading commands beside references measured in the same run (issue 19).

Every command runs as a fresh process, --repeat times round-robin, median wall time:

- `revcli predict --run R` on 20,000 rows (1x) and 200,000 rows (10x) beside
  ref_bare_predict.py (pandas read, joblib.load of the same model as a pickle, predict, write
  the parquet): goal <= 1.5x; the same script loading revcli's skops file (every type trusted,
  no checks) for information;
- `revcli compare runs` on the workspace's handful of runs (the demo: 8) and on stores of 10,
  100 and 1,000 runs, beside `python -c pass` (the floor): goals <= 1 s on the handful,
  <= 2 s on 1,000 runs (absolute, so read them with the load average printed beside);
- `revcli evaluate --run R --no-plots --no-track`, and the same logging its evaluation run
  (the logger process: MLflow beside the scoring), its ratio to the untracked one the cost of
  the tracking, for information.

The stores are built quickly: one real `revcli train` (its run is the template), then synthetic
runs with the same tags, params and metrics (varied) logged with revcli's tracking client.

    python benchmarks/bench_commands.py                 # median of 3 (~5 min on 2 cores)
    python benchmarks/bench_commands.py --repeat 1 --stores 10,100
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import _measure as m

HERE = Path(__file__).resolve().parent
HANDFUL = 8

_BUILD = """
import random, sys
from revcli import settings, tracking
from revcli.workspace import Workspace
root, template, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
s = settings.resolve(flags={'workspace': root}, env={})
tracker, experiment_id = tracking.connect(s, Workspace(root))
run = tracker.get_run(template)
tags = {k: v for k, v in run.raw.data.tags.items() if not k.startswith('mlflow.')}
rng = random.Random(0)
for i in range(n):
    run_id = tracker.create_run(experiment_id, f'synthetic {i}', tags, run.raw.data.params)
    metrics = {k: v * rng.uniform(0.9, 1.1) for k, v in run.raw.data.metrics.items()}
    tracker.log(run_id, metrics=metrics)
    tracker.end_run(run_id)
"""


def build(ws: Path, template: str, runs: int, env: dict[str, str], cwd: Path) -> None:
    result = m.run([sys.executable, "-c", _BUILD, str(ws), template, str(runs)], env, cwd)
    if result.returncode != 0:
        raise SystemExit(f"could not log synthetic runs:\n{result.stderr}")


def trained(ws: m.FreshWorkspace, env: dict[str, str], cwd: Path) -> str:
    result = m.run([*m.revcli(), "train", "-s", "converting_only", "-q", "--json",
                    "--no-plots"], env, cwd)
    out = result.json()
    if result.returncode != 0 or not out:
        raise SystemExit(f"revcli train failed:\n{result.stderr}")
    return str(out["run_id"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20_000, help="rows scored at 1x")
    parser.add_argument("--stores", default="10,100,1000", help="runs in the compare stores")
    parser.add_argument("--data", type=Path, help="a session table (parquet) instead of the demo")
    parser.add_argument("--against", type=Path, help="another revcli checkout (e.g. `git archive "
                        "main revcli | tar -x -C DIR`): its predict and compare runs too, as "
                        "'(before)'")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        print(f"skipped: {args.data} does not exist")
        return 0
    with tempfile.TemporaryDirectory(prefix="bench-commands-") as tmp_name:
        tmp = Path(tmp_name)
        print("== writing the tables and training the model ...", file=sys.stderr, flush=True)
        table = tmp / "train.parquet"
        rows = (m.write_scaled(None, 472_871, 1, table) if args.data is None
                else m.parquet_rows(args.data))
        source = str(args.data) if args.data else f"demo:rows={rows},seed=0"
        ws = m.FreshWorkspace(tmp / "ws", args.data or table, source)
        env, cwd = m.child_env(ws.root), tmp
        run_id = trained(ws, env, cwd)
        model = ws.root / "models" / run_id / "model.skops"
        import joblib

        from revcli import serialization

        pickled = tmp / "model.joblib"  # the reference loads a pickle
        joblib.dump(serialization.load(model), pickled)
        import pandas as pd

        frame = pd.read_parquet(args.data or table)
        scored: dict[int, Path] = {}
        for scale in (1, 10):
            path = tmp / f"score-{scale}x.parquet"
            n = min(len(frame), args.rows * scale)
            frame.iloc[:n].to_parquet(path, index=False)
            scored[scale] = path
        del frame
        build(ws.root, run_id, HANDFUL - 1, env, cwd)  # the handful: the real run and 7 more

        stores: dict[int, Path] = {}
        for size in [int(s) for s in args.stores.split(",") if s]:
            print(f"== a store of {size:,} runs ...", file=sys.stderr, flush=True)
            store_ws = tmp / f"store-{size}"
            fresh = m.FreshWorkspace(store_ws, args.data or table, source)
            build(store_ws, trained(fresh, m.child_env(store_ws), cwd), size - 1,
                  m.child_env(store_ws), cwd)
            stores[size] = store_ws

        C = m.Command
        commands = [C("python -c pass", [sys.executable, "-c", "pass"], env, cwd)]
        for scale, path in scored.items():
            out = tmp / f"out-{scale}x.parquet"
            commands += [
                C(f"ref: bare predict {scale}x", [sys.executable, str(HERE / "ref_bare_predict.py"),
                                                  str(pickled), str(path), str(out)], env, cwd),
                C(f"ref: bare skops predict {scale}x",
                  [sys.executable, str(HERE / "ref_bare_predict.py"), str(model), str(path),
                   str(out)], env, cwd),
                C(f"predict {scale}x", [*m.revcli(), "predict", "--run", run_id, "--data",
                                        str(path), "--out", str(out), "-q"], env, cwd)]
        commands.append(C(f"compare runs ({HANDFUL} runs)", [*m.revcli(), "compare", "runs"],
                          env, cwd))
        for size, store_ws in stores.items():
            commands.append(C(f"compare runs ({size:,} runs)", [*m.revcli(), "compare", "runs"],
                              m.child_env(store_ws), cwd))
        if args.against is not None:
            def before(env: dict[str, str]) -> dict[str, str]:
                return {**env, "PYTHONPATH": str(args.against.resolve())}

            for c in list(commands[1:]):
                if c.name.startswith(("predict", "compare")):
                    commands.append(C(f"{c.name} (before)", c.cmd, before(c.env or env), cwd))
        commands.append(C("evaluate --no-plots --no-track",
                          [*m.revcli(), "evaluate", "--run", run_id, "--no-plots", "--no-track",
                           "-q"], env, cwd))
        commands.append(C("evaluate --no-plots (tracked)",
                          [*m.revcli(), "evaluate", "--run", run_id, "--no-plots", "-q"], env,
                          cwd))
        print(f"== measuring ({m.load()}) ...", file=sys.stderr, flush=True)
        results = m.interleaved(commands, args.repeat)

        print(f"\n{source}: {rows:,} rows trained; predict on {args.rows:,} (1x) and "
              f"{args.rows * 10:,} (10x) rows; {m.cores()} cores; median of {args.repeat}; "
              f"{m.load()}")
        print(f"{'command':36} {'wall s':>7} {'ratio':>7}  goal")
        floor = results["python -c pass"]
        for c in commands:
            r = results[c.name]
            if r.failed:
                print(f"{c.name:36} FAILED: {r.failed.error}")
                continue
            ratio, goal = "", ""
            if c.name.startswith("predict"):
                ref = results[f"ref: bare {c.name.removesuffix(' (before)')}"]
                if not ref.failed:
                    ratio = f"{r.wall / ref.wall:.2f}x"
                    goal = (f"<= 1.5x bare load-and-predict: "
                            f"{'met' if r.wall / ref.wall <= 1.5 else 'NOT met'}")
            elif c.name.startswith("compare runs"):
                ratio = f"{r.wall / floor.wall:.1f}x"
                limit = 2.0 if "1,000" in c.name else 1.0 if f"({HANDFUL} " in c.name else None
                if limit is not None and not c.name.endswith("(before)"):
                    goal = (f"<= {limit:g} s: {'met' if r.wall <= limit else 'NOT met'} "
                            "(ratio: to python -c pass)")
            elif c.name == "evaluate --no-plots (tracked)":
                untracked = results["evaluate --no-plots --no-track"]
                if not untracked.failed:
                    ratio = f"{r.wall / untracked.wall:.2f}x"
                    goal = "(ratio: to --no-track, the tracking's cost)"
            print(f"{c.name:36} {r.wall:7.2f} {ratio:>7}  {goal}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
