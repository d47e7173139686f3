"""Does AutoIFS's information-flow selection find the flows that are known to be useless, and keep
the ones that are not? The selector study of issue 16, on synthetic data with a planted structure.

    python benchmarks/autoifs_selection.py                             # every setting, seeds 1, 2, 3
    python benchmarks/autoifs_selection.py --settings default,code --seeds 1 --rows 20000
    python benchmarks/autoifs_selection.py --out docs/bench/autoifs_selection --img docs/img

Data (``msmtrec.data.synthetic``, 3 scenarios × 2 independent tasks, 4 fields × 50 ids,
``signal_scale`` 3, no per-scenario base-rate shift, so that the planted structure is the only
scenario or task effect): four conditions, each with its truth.

==========================  ==========  ==========  ============================================
 condition                   α (scen.)   ρ (task)    truth
==========================  ==========  ==========  ============================================
 ``no-scenario-signal``       0           0.5         scen→sh and scen→task are useless (the labels
                                                      ignore the scenario): both pruned
 ``task-correlation-1``       0.5         1           sh→task and scen→task are useless (both tasks
                                                      share one direction): both pruned
 ``scenario-signal-1``        1           0.5         control: the scenario unit is needed — every
                                                      (scenario, task) keeps scen→sh or scen→task
 ``task-signal-1``            0.5         0           control: the task units are needed — every
                                                      (scenario, task) keeps sh→task or scen→task
==========================  ==========  ==========  ============================================

Why a control's truth is "one of two flows" at most, and why the controls are judged by AUC: the
flows are the four cross terms of ``(f_t^sh + f_t^m)(u_sh + u_k)`` and share parameters
(``sh→task`` and ``scen→task`` use the same task unit, ``scen→sh`` and ``scen→task`` the same
scenario unit); a task unit has one output, so a rank-2 ``f_t^m`` reads any direction
``f_t^sh`` can; and a ticket is one decision per (scenario, task), so a "shared" flow that only a
few pairs keep is in effect theirs (measured: in ``task-signal-1``, seed 2, the pair (s1, task 1)
kept sh→sh alone and its AUC was keep-all's, 0.8274 vs 0.8281). What the data determine in a
control is whether the scenario (task) information reaches the predictions — which the test AUC
measures — not which flow carries it. The structural share is reported too.

Per setting and seed, every condition trains AutoIFS through the library's trainer (search then
retrain, batch 256, one thread; mlp ``[64, 32, 16]``, the default structure at a CPU width) and
reports, from the final ticket on the test split: **useless pruned**, the share of test samples
for which a useless flow is pruned (mean over the two flows of each null condition, both null
conditions); **useful kept**, the share of (scenario, task) pairs, weighted by samples, that keep
a flow of the control's group (mean over both controls), with the per-flow kept shares beside it;
the test mean AUC over the four conditions and the **worst condition's difference** to the same
model with every flow kept; and the share of gate decisions that search changed. A seed
**recovers the structure** when useless pruned ≥ 0.9 and no condition's mean AUC is more than
0.01 below keeping every flow (in a control, losing the scenario or task information costs far
more: pruning both scenario flows from the start costs 0.15 AUC at α = 1, ``--oracle``; 0.01 is
about the run-to-run difference of one condition here, e.g. +0.025 for seed 3's
``scenario-signal-1`` between two settings that keep its scenario flows).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from msmtrec.config import TrainConfig  # noqa: E402
from msmtrec.data import InMemoryDataset  # noqa: E402
from msmtrec.data.synthetic import make_synthetic_splits  # noqa: E402
from msmtrec.models import build_model, get_model_class  # noqa: E402
from msmtrec.models.autoifs import FLOWS  # noqa: E402
from msmtrec.report.plotting import pyplot, save_figure  # noqa: E402
from msmtrec.train.evaluate import evaluate_model  # noqa: E402
from msmtrec.train.trainer import Trainer  # noqa: E402

SH_SH, SH_TASK, SCEN_SH, SCEN_TASK = FLOWS
SHORT = {SH_SH: "sh>sh", SH_TASK: "sh>task", SCEN_SH: "scen>sh", SCEN_TASK: "scen>task"}

DATA = {"structure": "independent", "num_fields": 4, "vocab": 50, "signal_scale": 3.0, "scenario_bias_scale": 0.0}
CONDITIONS: dict[str, dict[str, Any]] = {
    "no-scenario-signal": {"data": {"scenario_signal": 0.0, "task_correlation": 0.5}, "useless": [SCEN_SH, SCEN_TASK]},
    "task-correlation-1": {"data": {"scenario_signal": 0.5, "task_correlation": 1.0}, "useless": [SH_TASK, SCEN_TASK]},
    # A control's "useful" flows are a group: every (scenario, task) must keep at least one of them.
    "scenario-signal-1": {"data": {"scenario_signal": 1.0, "task_correlation": 0.5}, "useful": [SCEN_SH, SCEN_TASK]},
    "task-signal-1": {"data": {"scenario_signal": 0.5, "task_correlation": 0.0}, "useful": [SH_TASK, SCEN_TASK]},
}
MODEL = {"mlp_dims": [64, 32, 16], "retrain_epochs": 30}
CODE = dict(get_model_class("autoifs").presets["code"].settings["model_params"])

# name → (what it is, model parameters on top of MODEL, training settings on top of the study's)
SETTINGS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "default": ("the library's default", {}, {}),
    "previous default": ("the default before the validation ticket: ticket_from=gates", {"ticket_from": "gates"}, {}),
    "validation ticket at tolerance 0.005": ("default with ticket_tolerance=0.005", {"ticket_tolerance": 0.005}, {}),
    "validation ticket at tolerance 0.02": ("default with ticket_tolerance=0.02", {"ticket_tolerance": 0.02}, {}),
    "code": ("the released code's selector (--preset code's model options)", CODE, {}),
    "code at batch 4096": ("the released code's selector at its batch size (16× fewer search steps)", CODE,
                         {"batch_size": 4096}),
    "default with code decomposition": ("default with decomposition=code", {"decomposition": "code"}, {}),
    "default with per-sample selector": ("default with selector=instance", {"selector": "instance"}, {}),
    "default with uniform flow costs": ("default with flow_costs=[1,1,1,1]", {"flow_costs": [1.0, 1.0, 1.0, 1.0]}, {}),
    "default at double pressure": ("default with gate_penalty=-0.02", {"gate_penalty": -0.02}, {}),
    "default without penalty": ("default with gate_penalty=0", {"gate_penalty": 0.0}, {}),
    "default without warm-up": ("default with gate_warmup_epochs=0", {"gate_warmup_epochs": 0}, {}),
    "default with code gate lr": ("default with gate_lr_scale=0.01", {"gate_lr_scale": 0.01}, {}),
}
KEEP_ALL = "every flow kept"  # the AUC reference: selection switched off
FIXED = {"selector": "table", "ticket_from": "gates"}  # a fixed_ticket's model: its table is the ticket


def fixed_ticket(pruned: list[str]) -> Callable[[Any], None]:
    """A frozen table selector that prunes the flows ``pruned`` and keeps the rest, from the start."""
    def patch(model: Any) -> None:
        with torch.no_grad():
            model.selector.logits.fill_(-10.0)
            for f in pruned:
                model.selector.logits[..., FLOWS.index(f)] = 10.0
        model.selector.logits.requires_grad_(False)
    return patch


keep_every_flow = fixed_ticket([])  # the reference model: selection switched off


def oracle(seeds: list[int], rows: int) -> None:
    """Test AUC of fixed tickets: every flow kept, each truth flow pruned alone, all of them pruned."""
    print("| condition | seed | ticket | AUC |\n|---|---|---|---|")
    for cond, spec in CONDITIONS.items():
        group = spec.get("useless", spec.get("useful", []))
        for seed in seeds:
            for pruned in [[], *[[f] for f in group], group]:
                r = run(cond, seed, rows, FIXED, {}, fixed_ticket(pruned))
                label = "every flow" if not pruned else "without " + " and ".join(SHORT[f] for f in pruned)
                print(f"| {cond} | {seed} | {label} | {r['auc']:.4f} |", flush=True)


def run(condition: str, seed: int, rows: int, params: dict[str, Any], train: dict[str, Any],
        patch: Callable[[Any], None] | None = None) -> dict[str, Any]:
    tr, val, test, schema = make_synthetic_splits(rows, seed=seed, **DATA, **CONDITIONS[condition]["data"])
    torch.manual_seed(seed)
    model = build_model("autoifs", schema, {**MODEL, **params})
    if patch is not None:
        patch(model)
    config = TrainConfig(model="autoifs", seed=seed, patience=2, **{"batch_size": 256, **train})
    t0 = time.perf_counter()
    Trainer(model, config, InMemoryDataset(tr, val, test, schema), progress=False).fit()
    seconds = time.perf_counter() - t0
    report = model.flow_report(test)
    kept = np.array([[[report["kept_fraction"][s][t][f] for f in FLOWS] for t in schema.tasks] for s in schema.scenarios])
    return {"kept": kept.tolist(), "auc": evaluate_model(model, test, schema)["mean_auc"],
            "changed": report["gates_changed_in_search"], "seconds": round(seconds, 1)}


def scores(runs: dict[str, dict[str, Any]], reference: dict[str, float]) -> dict[str, float]:
    """One seed's figures over the four conditions (``runs``: condition → run)."""
    pruned, kept, kept_each = [], [], []
    for cond, r in runs.items():
        k = np.array(r["kept"])  # [S, T, 4]: share of each scenario's test samples keeping the flow
        for f in CONDITIONS[cond].get("useless", []):
            pruned.append(1 - k[..., FLOWS.index(f)].mean())
        group = [FLOWS.index(f) for f in CONDITIONS[cond].get("useful", [])]
        if group:  # a table ticket is one decision per (scenario, task): the max is "keeps one of them"
            kept.append(k[..., group].max(axis=-1).mean())
            kept_each.extend(k[..., group].mean(axis=(0, 1)))
    auc = float(np.mean([r["auc"] for r in runs.values()]))
    changed = [r["changed"] for r in runs.values() if r["changed"] is not None]
    out = {"useless_pruned": float(np.mean(pruned)), "useful_kept": float(np.mean(kept)),
           "useful_kept_each": [float(v) for v in kept_each], "auc": auc,
           "auc_vs_keep_all": auc - float(np.mean([reference[c] for c in runs])),
           "worst_auc_vs_keep_all": min(r["auc"] - reference[c] for c, r in runs.items()),
           "changed": float(np.mean(changed)) if changed else float("nan")}
    out["recovered"] = bool(out["useless_pruned"] >= 0.9 and out["worst_auc_vs_keep_all"] >= -0.01)
    return out


def one_by_one(kept: list[float]) -> str:
    """The useful flows' kept shares, two per control: ``a/b · c/d``."""
    pairs = [kept[i:i + 2] for i in range(0, len(kept), 2)]
    return " · ".join("/".join(f"{v:.2f}" for v in p) for p in pairs)


def heatmap(name: str, per_seed: dict[int, dict[str, dict[str, Any]]], path: Path) -> None:
    """Kept share per (condition, task) × flow, mean over scenarios and seeds; truth outlined."""
    plt = pyplot()
    if plt is None:
        print(f"(no matplotlib: {path} not written)")
        return
    rows, values, truth = [], [], []
    for cond, spec in CONDITIONS.items():
        k = np.mean([np.array(per_seed[s][cond]["kept"]) for s in per_seed], axis=0).mean(axis=0)  # [T, 4]
        for t in range(k.shape[0]):
            rows.append(f"{cond} / task {t}")
            values.append(k[t])
            truth.append([("useless" if f in spec.get("useless", []) else "useful" if f in spec.get("useful", []) else "")
                          for f in FLOWS])
    fig, ax = plt.subplots(figsize=(6.8, 0.42 * len(rows) + 1.9))
    im = ax.imshow(values, vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            mark = {"useless": " ✗", "useful": " ✓", "": ""}[truth[i][j]]
            ax.text(j, i, f"{v:.2f}{mark}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
            if truth[i][j]:
                ax.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, lw=1.5,
                                           ec="red" if truth[i][j] == "useless" else "white"))
    ax.set_xticks(range(len(FLOWS)))
    ax.set_xticklabels([SHORT[f] for f in FLOWS], fontsize=8)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels(rows, fontsize=8)
    ax.set_title(f"AutoIFS kept share ({name}; mean of {len(per_seed)} seeds)\n✗ useless by construction, "
                 f"✓ control: its information needs one of the two", fontsize=9)
    fig.colorbar(im, ax=ax, fraction=0.04)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--settings", default="all", help=f"comma-separated names or 'all': {', '.join(SETTINGS)}")
    ap.add_argument("--seeds", default="1,2,3")
    ap.add_argument("--rows", type=int, default=60000)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, help="write <out>.md and <out>.json")
    ap.add_argument("--img", type=Path, help="folder for one heatmap per setting")
    ap.add_argument("--oracle", action="store_true", help="only the fixed-ticket AUCs that define 'useful'")
    ap.add_argument("--cache", type=Path, help="JSON-lines file of finished runs: reused, and appended to")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.oracle:
        oracle([int(s) for s in args.seeds.split(",")], args.rows)
        return
    names = list(SETTINGS) if args.settings == "all" else [s.strip() for s in args.settings.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    start = f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}"
    print(f"AutoIFS selection study: {args.rows:,} rows, seeds {seeds}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} thread(s); started {start}", flush=True)

    cache: dict[str, dict[str, Any]] = {}
    if args.cache and args.cache.exists():
        for line in args.cache.read_text().splitlines():
            entry = json.loads(line)
            cache[entry["key"]] = entry["run"]
    results: dict[str, dict[int, dict[str, dict[str, Any]]]] = {}
    for name in [KEEP_ALL] + names:
        desc, params, train = (("selection switched off", FIXED, {}) if name == KEEP_ALL
                               else SETTINGS[name])
        patch = keep_every_flow if name == KEEP_ALL else None
        results[name] = {}
        for seed in seeds:
            results[name][seed] = {}
            for cond in CONDITIONS:
                key = json.dumps([name, params, train, cond, seed, args.rows])
                r = cache.get(key) or run(cond, seed, args.rows, params, train, patch)
                if args.cache and key not in cache:
                    with args.cache.open("a") as f:
                        f.write(json.dumps({"key": key, "run": r}) + "\n")
                results[name][seed][cond] = r
                kept = np.array(r["kept"]).mean(axis=(0, 1))
                print(f"  {name:<30} seed {seed} {cond:<20} kept {' '.join(f'{v:.2f}' for v in kept)}  "
                      f"AUC {r['auc']:.4f}  changed {r['changed']}  {r['seconds']:.0f}s", flush=True)

    reference = {s: {c: results[KEEP_ALL][s][c]["auc"] for c in CONDITIONS} for s in seeds}
    each = " · ".join("/".join(SHORT[f] for f in spec["useful"]) for spec in CONDITIONS.values() if "useful" in spec)
    lines = ["| setting | seed | useless flows pruned | useful groups kept | useful flows one by one "
             f"({each}) | mean AUC | AUC − keep-all (mean; worst condition) | decisions changed | recovered |",
             "|---|---|---|---|---|---|---|---|---|"]
    table: dict[str, Any] = {}
    for name in names:
        table[name] = {}
        for seed in seeds:
            sc = scores(results[name][seed], reference[seed])
            table[name][seed] = sc
            lines.append(f"| {name} | {seed} | {sc['useless_pruned']:.2f} | {sc['useful_kept']:.2f} | "
                         f"{one_by_one(sc['useful_kept_each'])} | {sc['auc']:.4f} | "
                         f"{sc['auc_vs_keep_all']:+.4f}; {sc['worst_auc_vs_keep_all']:+.4f} | {sc['changed']:.2f} | "
                         f"{'yes' if sc['recovered'] else 'no'} |")
        n = sum(table[name][s]["recovered"] for s in seeds)
        mean = {k: np.mean([table[name][s][k] for s in seeds], axis=0)
                for k in ("useless_pruned", "useful_kept", "useful_kept_each", "auc", "auc_vs_keep_all",
                          "worst_auc_vs_keep_all", "changed")}
        lines.append(f"| **{name}** | mean | **{mean['useless_pruned']:.2f}** | **{mean['useful_kept']:.2f}** | "
                     f"{one_by_one(mean['useful_kept_each'])} | "
                     f"{mean['auc']:.4f} | {mean['auc_vs_keep_all']:+.4f}; {mean['worst_auc_vs_keep_all']:+.4f} | "
                     f"{mean['changed']:.2f} | **{n} of {len(seeds)}** |")
    ref = np.mean([np.mean(list(reference[s].values())) for s in seeds])
    lines.append(f"| {KEEP_ALL} (reference) | mean | 0 | 1.00 | 1.00/1.00 · 1.00/1.00 | {ref:.4f} | 0; 0 | – | – |")
    text = "\n".join(lines)
    print(text)
    print(f"finished {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, load average {os.getloadavg()[0]:.1f}")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".md").write_text(f"Started {start}.\n\n{text}\n")
        args.out.with_suffix(".json").write_text(json.dumps({"rows": args.rows, "seeds": seeds, "settings": {
            n: SETTINGS[n][0] for n in names}, "runs": results, "scores": table}, indent=1))
    if args.img:
        for name in names:
            heatmap(name, results[name], args.img / f"autoifs_selection_{name.replace(' ', '_')}.png")


if __name__ == "__main__":
    main()
