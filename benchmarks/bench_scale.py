"""How revcli's wall time and peak RSS grow with rows, and where one 24 GB machine runs out.

At each scale (multiples of the full demo set, 472,871 sessions; the demo generated with that
many rows, or --data repeated) it runs, each as a fresh process in a fresh workspace holding the
table as current (an MLflow store created beforehand):

- `revcli train -s converting_only`;
- `revcli train -s two_stage --drop-feature engagement_depth`;
- `revcli predict --run <that two_stage run> --data <the table> --out scored.parquet`;
- `revcli tune -n 1 -j 1 --no-plots` (one converting_only / xgb trial: 3 folds and the refit).

Then, per command: seconds per million rows at each scale and the marginal cost between scales
(linear growth keeps it steady; start-up and other fixed costs make the first scales look
cheaper per row), and a straight line fitted to peak RSS against rows, extrapolated to where it
would cross 24 GB. It prints; it asserts nothing.

    python benchmarks/bench_scale.py                        # 1x, 2x, 5x (~10 min on 2 cores)
    python benchmarks/bench_scale.py --scales 1,2,5,10      # ~25 min
    python benchmarks/bench_scale.py --data /path/sessions.parquet   # a real session table,
                                                            # skipped if it is absent
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import _measure as m

DROP = "engagement_depth"
LIMIT_MB = 24 * 1024  # one 24 GB machine (ru_maxrss is in KiB; shown as MB = MiB)
COMMANDS = ("train converting_only", f"train two_stage -{DROP}", "predict", "tune 1 trial")


def measure_scale(scale: int, args: argparse.Namespace,
                  tmp: Path) -> tuple[int, dict[str, m.Measured]]:
    """The table's rows at ``scale`` and each command's runs."""
    base = tmp / f"scale-{scale}"
    base.mkdir()
    data = base / "sessions.parquet"
    print(f"== {scale}x: writing the table ...", file=sys.stderr, flush=True)
    rows = m.write_scaled(args.data, args.rows, scale, data)
    source = f"{args.data} x{scale}" if args.data else f"demo:rows={rows},seed=0"
    ws = m.FreshWorkspace(base / "ws", data, source)
    env, cwd = m.child_env(ws.root), base
    revcli = m.revcli()
    results = {name: m.Measured(name) for name in COMMANDS}

    def one(name: str, cmd: list[str], fresh: bool = True) -> m.Run:
        if fresh:
            ws.reset()
        run = m.run(cmd, env, cwd)
        results[name].runs.append(run)
        state = "ok" if run.returncode == 0 else f"FAILED: {run.error}"
        print(f"  {scale}x {name}: {run.wall:.1f} s, {run.rss_mb:.0f} MB, {state}",
              file=sys.stderr, flush=True)
        return run

    for _ in range(args.repeat):
        one(COMMANDS[0], [*revcli, "train", "-s", "converting_only", "-q", "--json"])
        trained = one(COMMANDS[1], [*revcli, "train", "-s", "two_stage", "--drop-feature", DROP,
                                    "-q", "--json"])
        out = trained.json() if trained.returncode == 0 else None
        if out and out.get("run_id"):
            one(COMMANDS[2], [*revcli, "predict", "--run", out["run_id"], "--data", str(data),
                              "--out", str(base / "scored.parquet"), "-q", "--json"],
                fresh=False)
            (base / "scored.parquet").unlink(missing_ok=True)
        one(COMMANDS[3], [*revcli, "tune", "-n", "1", "-j", "1", "--no-plots", "-q", "--json"])
    data.unlink()
    return rows, results


def fit_line(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares intercept and slope of ys against xs."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx if sxx else 0.0
    return my - slope * mx, slope


def report(measured: dict[int, tuple[int, dict[str, m.Measured]]], base_rows: int) -> None:
    scales = sorted(measured)
    rows = {s: measured[s][0] for s in scales}
    by_scale = {s: measured[s][1] for s in scales}
    print(f"\n{'command':36}" + "".join(f"{f'{s}x wall s':>11}{'RSS MB':>8}" for s in scales))
    for name in COMMANDS:
        cells = []
        for s in scales:
            r = by_scale[s][name]
            cells.append(f"{'failed':>19}" if r.failed or not r.runs
                         else f"{r.wall:11.1f}{r.rss_mb:8.0f}")
        print(f"{name:36}" + "".join(cells))
    print(f"{'rows':36}" + "".join(f"{rows[s]:>19,}" for s in scales))

    print("\ngrowth (s/M = seconds per million rows)")
    for name in COMMANDS:
        points = [(rows[s] / 1e6, by_scale[s][name]) for s in scales]
        points = [(mrows, r.wall, r.rss_mb) for mrows, r in points if r.runs and not r.failed]
        if len(points) < 2:
            print(f"{name}: too few scales measured to tell")
            continue
        xs, walls, rss = ([p[i] for p in points] for i in range(3))
        per_m = ", ".join(f"{w / x:.1f}" for x, w in zip(xs, walls, strict=True))
        marginal = [(walls[i] - walls[i - 1]) / (xs[i] - xs[i - 1]) for i in range(1, len(xs))]
        fixed, slope = fit_line(xs, walls)
        last = marginal[-1]
        if len(xs) < 3:
            verdict = "two scales only: a third tells whether it stays linear"
        elif slope <= 0:
            verdict = "flat: no measurable cost per row (fixed costs dominate)"
        elif last > 1.5 * slope:
            verdict = (f"SUPER-LINEAR: the last step costs {last / slope:.1f}x the average "
                       "per row")
        elif last < slope / 1.5:
            verdict = "sub-linear over these scales (fixed costs still dominate)"
        else:
            verdict = "linear"
        print(f"{name}: {per_m} s/M at {', '.join(f'{x:.2f}' for x in xs)} M rows; marginal "
              f"{', '.join(f'{v:.1f}' for v in marginal)} s/M; fit {fixed:.1f} s + "
              f"{slope:.1f} s/M: {verdict}")
        mb0, mb_per_m = fit_line(xs, rss)
        if mb_per_m <= 0:
            print(f"  peak RSS {', '.join(f'{v:.0f}' for v in rss)} MB: flat, no crossing of "
                  f"24 GB in sight")
            continue
        cross = (LIMIT_MB - mb0) / mb_per_m
        print(f"  peak RSS {', '.join(f'{v:.0f}' for v in rss)} MB = {mb0:.0f} MB + "
              f"{mb_per_m:.0f} MB/M rows: 24 GB at ~{cross:.0f} M rows "
              f"(~{cross * 1e6 / base_rows:.0f}x the 1x table), where the fit line says "
              f"~{(fixed + slope * cross) / 60:.0f} min")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,2,5", help="comma-separated multiples of the "
                        "table (default 1,2,5; add 10 for the issue's 10x)")
    parser.add_argument("--rows", type=int, help="rows of the 1x demo table "
                        "(default: the full demo set, 472,871)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (median)")
    parser.add_argument("--data", type=Path, help="a session table (parquet) instead of the demo")
    args = parser.parse_args()
    if args.data is not None and not args.data.is_file():
        print(f"skipped: {args.data} does not exist")
        return 0
    if args.data is not None:
        try:
            features = m.session_features(args.data)
        except Exception as exc:  # a DataError: not a session table revcli can train on
            print(f"skipped: {args.data} is not a session table revcli can train on: {exc}")
            return 0
        if DROP not in features:
            print(f"skipped: {args.data} has no {DROP} column to drop")
            return 0
    if args.rows is None:
        from revcli.data import FULL_ROWS

        args.rows = FULL_ROWS
    base_rows = args.rows if args.data is None else m.parquet_rows(args.data)
    scales = sorted({int(s) for s in args.scales.split(",") if s.strip()})
    commit = subprocess.run(["git", "-C", str(m.ROOT), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    print(f"revcli scale benchmark: {m.ROOT} at {commit or '?'}; {m.cores()} cores; "
          f"{args.data or 'demo'} at {', '.join(f'{s}x' for s in scales)}; "
          f"median of {args.repeat}; {m.load()}")
    with tempfile.TemporaryDirectory(prefix="revcli-bench-scale-") as tmp:
        by_scale = {s: measure_scale(s, args, Path(tmp)) for s in scales}
    report(by_scale, base_rows)
    print(f"\nat the end: {m.load()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
