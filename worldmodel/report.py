"""Turn several runs into the seeds' table: mean and std of the final AverageReturn per config,
and a return-per-iteration plot (``scripts/report.py`` is its command line; a sweep calls
``write_report`` at its end).

    python scripts/report.py runs/rs_seed1 runs/rs_seed2 runs/cem_seed1 runs/cem_seed2 --out report.md

Runs are grouped by their config.yaml with the seed (and wandb, logger, device) left out; each
group is labelled by the settings that tell it apart from the others. The markdown table is
written to ``out``, the plot next to it, and optionally the same numbers and the curves as JSON.
"""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from worldmodel.agents import PROGRESS_KEY, declared_agent
from worldmodel.errors import UserError

IGNORED = ("seed", "wandb", "logger", "device")  # settings that do not make a different experiment


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[prefix + key] = tuple(value) if isinstance(value, list) else value
    return flat


def load_run(logdir: Path) -> dict[str, Any]:
    """config (flat, without ignored keys), seed, agent and the metrics rows of one run folder."""
    config_path, metrics_path = logdir / "config.yaml", logdir / "metrics.jsonl"
    if not config_path.is_file() or not metrics_path.is_file():
        raise UserError(f"{logdir} is not a run folder (needs config.yaml and metrics.jsonl)")
    config = yaml.safe_load(config_path.read_text()) or {}
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("AverageReturn") is not None]
    if not rows:
        raise UserError(f"{logdir}/metrics.jsonl holds no AverageReturn yet")
    flat = flatten(config)
    key = {k: v for k, v in flat.items() if k.split(".")[0] not in IGNORED}
    agent = declared_agent(config_path) or "state"  # a state run from before configs named their agent
    for row in rows:  # state runs from before every row had env_steps logged it as EnvSteps
        if "env_steps" not in row and "EnvSteps" in row:
            row["env_steps"] = row["EnvSteps"]
    return {"logdir": logdir, "config": key, "seed": config.get("seed"), "agent": agent, "rows": rows}


def group_runs(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Runs with equal configs together, labelled by the settings that differ between groups."""
    groups: dict[tuple, list[dict[str, Any]]] = {}
    for run in runs:
        groups.setdefault(tuple(sorted(run["config"].items())), []).append(run)
    configs = [dict(key) for key in groups]
    differing = sorted({k for c in configs for k in c if any(c.get(k) != o.get(k) for o in configs)})
    labelled = {}
    for key, members in groups.items():
        config = dict(key)
        parts = [f"{k}={config.get(k)}" for k in differing]
        label = ", ".join(parts) or f"{config.get('env.id')} {config.get('planner.kind')}"
        labelled[label] = members
    return labelled


def final_returns(members: list[dict[str, Any]]) -> np.ndarray:
    return np.array([run["rows"][-1]["AverageReturn"] for run in members], dtype=np.float64)


def step_of(run: dict[str, Any], row: dict[str, Any]) -> int:
    """Where a row sits on the curve in its agent's own count: the state agent's Iteration, the pixel agent's episode."""
    return row[PROGRESS_KEY[run["agent"]]]


def summary_rows(groups: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """One row per group: its runs, seeds, final steps and the mean / std of the final AverageReturn."""
    rows = []
    for label, members in groups.items():
        returns = final_returns(members)
        rows.append(
            {
                "config": label,
                "runs": len(members),
                "seeds": [run["seed"] for run in members],
                "logdirs": [str(run["logdir"]) for run in members],
                "final_iteration": sorted({step_of(run, run["rows"][-1]) for run in members}),
                "final_returns": returns.tolist(),
                "AverageReturn_mean": float(returns.mean()),
                "AverageReturn_std": float(returns.std()),
            }
        )
    return rows


def curves(groups: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, list[float]]]:
    """Per group: mean and std of AverageReturn over its runs at the steps every run has reached."""
    result = {}
    for label, members in groups.items():
        length = min(len(run["rows"]) for run in members)
        returns = np.array([[row["AverageReturn"] for row in run["rows"][:length]] for run in members])  # (runs, T)
        first = members[0]["rows"][:length]
        steps = [step_of(members[0], row) for row in first]
        result[label] = {"step": steps, "mean": returns.mean(axis=0).tolist(), "std": returns.std(axis=0).tolist()}
        if all("env_steps" in row for row in first):
            result[label]["env_steps"] = [row["env_steps"] for row in first]
    return result


def write_curves_csv(groups: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """The curves as CSV: config, step (iteration or episode), env_steps (empty if not logged), runs, mean, std."""
    lines = ["config,step,env_steps,runs,AverageReturn_mean,AverageReturn_std"]
    for label, curve in curves(groups).items():
        env_steps = curve.get("env_steps", [""] * len(curve["step"]))
        for step, env_step, mean, std in zip(curve["step"], env_steps, curve["mean"], curve["std"]):
            quoted = '"' + label.replace('"', '""') + '"'
            lines.append(f"{quoted},{step},{env_step},{len(groups[label])},{mean:.4f},{std:.4f}")
    path.write_text("\n".join(lines) + "\n")


def markdown_table(groups: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| config | runs | seeds | final iteration | AverageReturn mean | AverageReturn std |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for row in summary_rows(groups):
        seeds = ", ".join(str(seed) for seed in row["seeds"])
        lines.append(
            f"| {row['config']} | {row['runs']} | {seeds} | {', '.join(map(str, row['final_iteration']))} "
            f"| {row['AverageReturn_mean']:.2f} | {row['AverageReturn_std']:.2f} |"
        )
    return "\n".join(lines) + "\n"


LEGEND_WIDTH = 80  # characters a legend line may take before it wraps
LEGEND_INSIDE = 40  # labels up to this long fit inside the plot; longer ones put the legend under it


def plot_returns(groups: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Mean AverageReturn per iteration over each group's runs, with a +-1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    all_curves = curves(groups)
    by_env_steps = all("env_steps" in curve for curve in all_curves.values())
    labels = {label: f"{label} ({len(groups[label])} runs)" for label in all_curves}
    for label, curve in all_curves.items():
        mean, std = np.array(curve["mean"]), np.array(curve["std"])
        x = curve["env_steps"] if by_env_steps else curve["step"]
        ax.plot(x, mean, marker="o", label=textwrap.fill(labels[label], LEGEND_WIDTH))
        ax.fill_between(x, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("env steps" if by_env_steps else "iteration")
    ax.set_ylabel("AverageReturn")
    ax.grid(alpha=0.3)
    if any(len(text) > LEGEND_INSIDE for text in labels.values()):
        # Labels of many settings would cover the curves: the legend goes under the plot instead.
        ax.legend(fontsize="small", loc="upper left", bbox_to_anchor=(0.0, -0.15))
    else:
        ax.legend(fontsize="small")
    fig.savefig(path, bbox_inches="tight")
    plt.close(fig)


def write_report(
    logdirs: list[Path],
    out: Path,
    *,
    plot: Path | None = None,
    json_out: Path | None = None,
    csv_out: Path | None = None,
) -> dict[str, Any]:
    """Group the runs, write the markdown table to ``out``, the plot (default: ``out`` with .png), with
    ``json_out`` ``{"rows": [...], "curves": {...}}`` and with ``csv_out`` the curves as CSV. Returns the
    rows and curves plus the table."""
    groups = group_runs([load_run(Path(logdir)) for logdir in logdirs])
    table = markdown_table(groups)
    plot = plot or out.with_suffix(".png")
    for path in filter(None, (out, plot, json_out, csv_out)):  # a new report folder is made, as a run folder is
        path.parent.mkdir(parents=True, exist_ok=True)
    plot_returns(groups, plot)
    out.write_text(f"# Final AverageReturn per config\n\n{table}\n![AverageReturn per iteration]({plot.name})\n")
    report = {"rows": summary_rows(groups), "curves": curves(groups)}
    if json_out is not None:
        json_out.write_text(json.dumps(report, indent=2) + "\n")
    if csv_out is not None:
        write_curves_csv(groups, csv_out)
    return {**report, "table": table}
