"""Markdown tables from results/*.jsonl -> results/REPORT.md (and stdout).

    PYTHONPATH=. python benchmarks/quality_scratch/report.py
"""

from __future__ import annotations

import common as c
import pandas as pd

ORDER = ["mean", "oracle", "ridge", "xgb", "hgb", "rf", "xgb_log", "xgb_log_smear", "xgb_tuned",
         "xgb+leak"]


def demo_tables() -> list[str]:
    rows = c.load_results("models") + c.load_results("tuned") + c.load_results("defaults")
    df = pd.DataFrame(rows)
    out = []
    for split in c.SPLITS:
        d = df[df.split == split]
        names = [m for m in ORDER if m in set(d.model)] + sorted(
            set(d.model) - set(ORDER))
        out.append(f"\n### demo, {split} split: RMSE / oracle RMSE, (RMSE against the truth), "
                   "[fit s]\n")
        head = ["model"]
        for strategy in c.STRATEGIES:
            oracle = d[(d.strategy == strategy) & (d.model == "oracle")].rmse
            o = f" (oracle {oracle.iloc[0]:.3f})" if len(oracle) else ""
            head += [f"{strategy} no time{o}", f"{strategy} +time"]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for name in names:
            cells = [name]
            for strategy in c.STRATEGIES:
                for tf in (False, True):
                    sel = d[(d.strategy == strategy) & (d.model == name)]
                    sel = sel if name == "oracle" else sel[sel.time_features == tf]
                    if not len(sel):
                        cells.append("")
                        continue
                    r = sel.iloc[-1]
                    cells.append(f"{r.ratio:.4f} ({r.rmse_truth:.2f}) [{r.fit_s:.1f}]")
            out.append("| " + " | ".join(cells) + " |")
    tuned = df[df.model == "xgb_tuned"]
    if len(tuned):
        out.append("\n### tuned xgb: best parameters "
                   "(40 trials, 3-fold CV on the training split)\n")
        for _, r in tuned.iterrows():
            p = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.params.items()}
            out.append(f"- {r.split} {r.strategy} {'+time' if r.time_features else 'no time'}: "
                       f"cv {r.cv_rmse:.4f}, {r.trials_complete} complete / "
                       f"{r.trials_pruned} pruned, search {r.search_s:.0f} s: {p}")
    return out


def real_tables() -> list[str]:
    rows = c.load_results("real")
    if not rows:
        return []
    df = pd.DataFrame(rows)
    out = ["\n### real orders: RMSE (MAE) [mean prediction vs actual]\n"]
    for strategy in c.STRATEGIES:
        d = df[df.strategy == strategy]
        splits = list(dict.fromkeys(d.split))
        out.append(f"\n{strategy}\n")
        out.append("| model | features | " + " | ".join(splits) + " |")
        out.append("|---|---|" + "---|" * len(splits))
        for (model, features), g in d.groupby(["model", "features"], sort=False):
            cells = []
            for split in splits:
                s = g[g.split == split]
                cells.append("" if not len(s) else
                             f"{s.rmse.iloc[-1]:.3f} ({s.mae.iloc[-1]:.2f}) "
                             f"[{s.mean_pred.iloc[-1]:.2f} vs {s.mean_actual.iloc[-1]:.2f}]")
            out.append(f"| {model} | {features} | " + " | ".join(cells) + " |")
    return out


PROPOSALS = {"xgb_d3_clf_d2": "xgb proposed", "hgb_prop_clf100": "hgb proposed"}


def defaults_tables() -> list[str]:
    """The proposals (and today's defaults, ridge) against the tuned xgb: RMSE % over tuned,
    RMSE minus ridge's, error against the truth."""
    df = pd.DataFrame(c.load_results("models") + c.load_results("tuned")
                      + c.load_results("defaults"))
    # hgb_prop and hgb_prop_clf100 share the regressor; only two_stage has the classifier
    df = df[~((df.model == "hgb_prop") & (df.strategy == "two_stage"))]
    df = df[~((df.model == "hgb_prop_clf100") & (df.strategy != "two_stage"))]
    df = df[df.model.isin(["ridge", "xgb", "hgb", "xgb_tuned", "hgb_prop", *PROPOSALS])]
    df["model"] = df.model.replace({**PROPOSALS, "hgb_prop": "hgb proposed"})
    out = []
    for split in c.SPLITS:
        d = df[df.split == split]
        rmse = d.pivot_table(index="model", columns=["strategy", "time_features"], values="rmse")
        truth = d.pivot_table(index="model", columns=["strategy", "time_features"],
                              values="rmse_truth")
        out.append(f"\n### defaults, demo {split} split: RMSE % over tuned / RMSE minus ridge's / "
                   "RMSE against the truth\n")
        head = ["model"] + [f"{s} {'+time' if tf else 'no time'}" for s, tf in rmse.columns]
        out.append("| " + " | ".join(head) + " |")
        out.append("|" + "---|" * len(head))
        for model in ["xgb", "hgb", "ridge", "xgb proposed", "hgb proposed", "xgb_tuned"]:
            cells = [model]
            for col in rmse.columns:
                pct = (rmse.loc[model, col] / rmse.loc["xgb_tuned", col] - 1) * 100
                vs_ridge = rmse.loc[model, col] - rmse.loc["ridge", col]
                cells.append(f"{pct:+.3f} % / {vs_ridge:+.4f} / {truth.loc[model, col]:.3f}")
            out.append("| " + " | ".join(cells) + " |")
    seeds = pd.DataFrame(c.load_results("seeds"))
    if len(seeds):
        seeds[["name", "seed"]] = seeds.model.str.split("@", expand=True)
        out.append("\n### other demo seeds, random split: RMSE minus ridge's (RMSE against the "
                   "truth)\n")
        cols = [(s, tf) for s in c.STRATEGIES for tf in (False, True)]
        out.append("| seed | model | " + " | ".join(
            f"{s} {'+time' if tf else 'no time'}" for s, tf in cols) + " |")
        out.append("|---|---|" + "---|" * len(cols))
        for (seed, name), g in seeds.groupby(["seed", "name"]):
            cells = []
            for s, tf in cols:
                r = g[(g.strategy == s) & (g.time_features == tf)].iloc[-1]
                ridge = seeds[(seeds.seed == seed) & (seeds.name == "ridge") & (seeds.strategy == s)
                              & (seeds.time_features == tf)].iloc[-1]
                cells.append(f"{r.rmse - ridge.rmse:+.4f} ({r.rmse_truth:.3f})")
            out.append(f"| {seed} | {name} | " + " | ".join(cells) + " |")
    fits = pd.DataFrame(c.load_results("fit_times"))
    if len(fits):
        fits = fits.groupby(["strategy", "model"], sort=False).last().reset_index()
        out.append("\n### fit seconds, full demo, random split's training rows, +time, best of 3, "
                   "2 threads\n")
        t = fits.pivot_table(index="model", columns="strategy", values="best_s", sort=False)
        out.append("| model | " + " | ".join(t.columns) + " |")
        out.append("|---|" + "---|" * len(t.columns))
        for model, r in t.iterrows():
            out.append(f"| {model} | " + " | ".join(f"{v:.2f}" for v in r) + " |")
    return out


def main() -> None:
    lines = ["# quality_scratch results", *demo_tables(), *defaults_tables(), *real_tables()]
    text = "\n".join(lines) + "\n"
    (c.RESULTS / "REPORT.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
