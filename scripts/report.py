#!/usr/bin/env python
"""Turn several runs into the seeds' table: mean and std of the final AverageReturn per config,
and a return-per-iteration plot.

    python scripts/report.py runs/rs_seed1 runs/rs_seed2 runs/cem_seed1 runs/cem_seed2 --out report.md

Runs are grouped by their config.yaml with the seed (and wandb, logger, device) left out; each
group is labelled by the settings that tell it apart from the others. The markdown table is
printed and written to --out; the plot goes next to it (--plot to choose).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import yaml

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
    """config (flat, without ignored keys), seed and the metrics rows of one run folder."""
    config_path, metrics_path = logdir / "config.yaml", logdir / "metrics.jsonl"
    if not config_path.is_file() or not metrics_path.is_file():
        raise SystemExit(f"error: {logdir} is not a run folder (needs config.yaml and metrics.jsonl)")
    config = yaml.safe_load(config_path.read_text()) or {}
    rows = [json.loads(line) for line in metrics_path.read_text().splitlines() if line.strip()]
    rows = [row for row in rows if row.get("AverageReturn") is not None]
    if not rows:
        raise SystemExit(f"error: {logdir}/metrics.jsonl holds no AverageReturn yet")
    flat = flatten(config)
    key = {k: v for k, v in flat.items() if k.split(".")[0] not in IGNORED}
    return {"logdir": logdir, "config": key, "seed": config.get("seed"), "rows": rows}


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


def markdown_table(groups: dict[str, list[dict[str, Any]]]) -> str:
    lines = [
        "| config | runs | seeds | final iteration | AverageReturn mean | AverageReturn std |",
        "|---|---:|---|---:|---:|---:|",
    ]
    for label, members in groups.items():
        returns = final_returns(members)
        seeds = ", ".join(str(run["seed"]) for run in members)
        iterations = sorted({run["rows"][-1].get("Iteration") for run in members})
        lines.append(
            f"| {label} | {len(members)} | {seeds} | {', '.join(map(str, iterations))} "
            f"| {returns.mean():.2f} | {returns.std():.2f} |"
        )
    return "\n".join(lines) + "\n"


def plot_returns(groups: dict[str, list[dict[str, Any]]], path: Path) -> None:
    """Mean AverageReturn per iteration over each group's runs, with a +-1 std band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, members in groups.items():
        length = min(len(run["rows"]) for run in members)  # iterations every run has reached
        returns = np.array([[row["AverageReturn"] for row in run["rows"][:length]] for run in members])  # (runs, T)
        iterations = [row.get("Iteration", i) for i, row in enumerate(members[0]["rows"][:length])]
        mean, std = returns.mean(axis=0), returns.std(axis=0)
        ax.plot(iterations, mean, marker="o", label=f"{label} ({len(members)} runs)")
        ax.fill_between(iterations, mean - std, mean + std, alpha=0.2)
    ax.set_xlabel("iteration")
    ax.set_ylabel("AverageReturn")
    ax.legend(fontsize="small")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with config.yaml and metrics.jsonl)")
    parser.add_argument(
        "--out", type=Path, default=Path("report.md"), help="markdown file for the table (default: report.md)"
    )
    parser.add_argument("--plot", type=Path, help="return-per-iteration plot (default: --out with .png)")
    args = parser.parse_args(argv)
    groups = group_runs([load_run(logdir) for logdir in args.runs])
    table = markdown_table(groups)
    plot_path = args.plot or args.out.with_suffix(".png")
    plot_returns(groups, plot_path)
    args.out.write_text(f"# Final AverageReturn per config\n\n{table}\n![AverageReturn per iteration]({plot_path.name})\n")
    print(table, end="")
    print(f"wrote {args.out} and {plot_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
