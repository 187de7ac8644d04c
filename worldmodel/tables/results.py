"""A table's figures from its run folders: each row's value per seed (``row_value``), the rows with their
mean and std over seeds beside the published columns (``build_table``), the source's findings checked on
ours, table.md, returns.png and the source's figures redrawn (``plot_curves``: one PNG per ``Curves``).

Where a row's figure is read (``row_value``): among a run's metrics rows that have the row's metric,
  - ``iteration=I``: the row of that iteration;
  - ``env_steps=N``: the last row whose env_steps is at most N, i.e. the evaluation nearest at or below N
    env steps (a run that has not reached N yet gives its latest one; table.md's "env steps" column says
    where each figure was read);
  - neither: the last row.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, NamedTuple

from worldmodel.errors import UserError
from worldmodel.tables.types import Budgets, Row, Run, Table

DIGITS = {"AverageReturn": 1, "DynamicsMSE": 3}
ITERATION = "Iteration"  # the state agent's progress key: the x axis of the curves


class Reading(NamedTuple):
    value: float
    within: float | None
    """The std of the returns within the run's row (StdReturn), where it logs one."""
    env_steps: int | None
    """The env steps of the row read."""


def read_rows(logdir: Path) -> list[dict[str, Any]]:
    path = logdir / "metrics.jsonl"
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a half-written last line of a killed run
    return rows


def env_steps_of(row: dict[str, Any]) -> int | None:
    """A metrics row's env steps (state runs from before every row had env_steps logged EnvSteps)."""
    steps = row.get("env_steps", row.get("EnvSteps"))
    return None if steps is None else int(steps)


def row_value(rows: list[dict[str, Any]], row: Row) -> Reading | None:
    """``row``'s figure in a run's metrics rows (see the module docstring), or None when not there yet."""
    candidates = [r for r in rows if r.get(row.metric) is not None]
    if row.iteration is not None:
        candidates = [r for r in candidates if r.get("Iteration") == row.iteration]
    if row.env_steps is not None:
        candidates = [r for r in candidates if (steps := env_steps_of(r)) is not None and steps <= row.env_steps]
    if not candidates:
        return None
    last = candidates[-1]
    within = last.get("StdReturn") if row.metric == "AverageReturn" else None
    return Reading(float(last[row.metric]), None if within is None else float(within), env_steps_of(last))


def build_table(table: Table, out: Path, seeds: list[int], rows: tuple[Row, ...]) -> list[dict[str, Any]]:
    """One result per row: ours over ``seeds`` (mean, std, values, where read) beside the published columns."""
    import numpy as np

    first = table.columns[0].name if table.columns else None  # a table of ours against ours has none
    results = []
    for row in rows:
        values, withins, steps, random_returns = [], [], [], []
        for seed in seeds:
            metrics = read_rows(out / f"{row.run}_seed{seed}")
            found = row_value(metrics, row)
            if found is None:
                continue
            values.append(found.value)
            steps.append(found.env_steps)
            if found.within is not None:
                withins.append(found.within)
            random_returns += [r["RandomReturn"] for r in metrics[:1] if r.get("RandomReturn") is not None]
        reference, reference_std = row.published.get(first, (None, None))
        results.append(
            {
                "name": row.name,
                "label": row.label,
                "metric": row.metric,
                "mean": float(np.mean(values)) if values else None,
                "std": float(np.std(values)) if values else None,
                "seeds": len(values),
                "values": values,
                "env_steps": row.env_steps,
                "env_steps_read": steps,
                "within_run_std": float(np.mean(withins)) if withins else None,
                "reference": reference,
                "reference_std": reference_std,
                "published": {name: {"mean": mean, "std": std} for name, (mean, std) in row.published.items()},
                "random_policy_return": float(np.mean(random_returns)) if random_returns else None,
            }
        )
    return results


def check_findings(table: Table, rows: list[dict[str, Any]]) -> dict[str, bool | None]:
    """Each of the source's findings -> true or false on our means (None while a row it needs is missing, or
    the random policy's return where a finding needs it and the runs log none: the pixel agent's)."""
    means = {r["name"]: r["mean"] for r in rows}
    randoms = [r["random_policy_return"] for r in rows if r["random_policy_return"] is not None]
    if any(value is None for value in means.values()):
        return {claim: None for claim, _ in table.findings}
    random = float(sum(randoms) / len(randoms)) if randoms else None
    results: dict[str, bool | None] = {}
    for claim, holds in table.findings:
        try:
            results[claim] = bool(holds(means, random))
        except (KeyError, TypeError):  # a row --tasks left out; no random return to compare with
            results[claim] = None
    return results


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def fmt_steps(steps: list[int | None]) -> str:
    known = [s for s in steps if s is not None]
    if not known:
        return "—"
    low, high = min(known), max(known)
    return f"{low:,}" if low == high else f"{low:,}-{high:,}"


def fmt_published(figure: dict[str, float | None] | None) -> str:
    """A published mean ± std with the digits its source gives (297 ± 39, 2795.3 ± 879.9, 0.291)."""
    if figure is None or figure["mean"] is None:
        return "—"
    return f"{figure['mean']:g}" + ("" if figure["std"] is None else f" ± {figure['std']:g}")


def markdown(
    table: Table,
    rows: list[dict[str, Any]],
    findings: dict[str, bool | None],
    scale: str,
    command: str,
    wall_s: float,
    figures: tuple[tuple[str, str], ...] = (),
) -> str:
    """table.md: ours beside the published columns; columns no row has a value for are left out; then
    returns.png and the ``figures`` (title, file name) drawn."""
    within = any(r["within_run_std"] is not None for r in rows)
    random = any(r["random_policy_return"] is not None for r in rows)
    header = ["row", "ours: mean ± std over seeds", "seeds", "env steps"]
    header += ["mean std within a run"] * within + ["random policy"] * random + [c.name for c in table.columns]
    lines = [
        f"# {table.name} ({scale} scale)",
        "",
        f"Command: `{command}`  ",
        f"Compute: {wall_s / 60:.1f} min in the runs (sum of their wall times).  ",
        f"Reference: {table.source}.",
        "",
        "| " + " | ".join(header) + " |",
        "|---|" + "---:|" * (len(header) - 1),
    ]
    for r in rows:
        d = DIGITS.get(r["metric"], 2)
        ours = "not measured" if r["mean"] is None else f"{r['mean']:.{d}f} ± {r['std']:.{d}f}"
        cells = [f"{r['label']} (`{r['name']}`)", ours, str(r["seeds"]), fmt_steps(r["env_steps_read"])]
        cells += [fmt(r["within_run_std"], d)] * within + [fmt(r["random_policy_return"], 1)] * random
        cells += [fmt_published(r["published"].get(c.name)) for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    if findings:
        lines += ["", "The source's findings, on ours:", ""]
        verdict = {None: "not measured", True: "yes", False: "NO"}
        lines += [f"- {claim}: {verdict[ok]}" for claim, ok in findings.items()]
    note = table.scale(scale).note
    if note:
        lines += ["", note]
    images = [("AverageReturn per run", "returns.png"), *figures]
    return "\n".join(lines) + "\n" + "".join(f"\n![{title}]({name})\n" for title, name in images)


def plot(out: Path, runs: tuple[Run, ...], seeds: list[int]) -> Path:
    """returns.png: each run's AverageReturn (mean ± std over its seeds) against env steps."""
    from worldmodel.report import load_run, plot_returns

    groups = {}
    for run in runs:
        members = []
        for seed in seeds:
            logdir = out / f"{run.name}_seed{seed}"
            if read_rows(logdir):
                try:
                    members.append(load_run(logdir))
                except UserError:
                    continue  # no AverageReturn yet
        if members:
            groups[run.name] = members
    path = out / "returns.png"
    if groups:
        plot_returns(groups, path)
    return path


def curve_points(out: Path, run: str, seeds: list[int], metric: str) -> dict[int, list[float]]:
    """Iteration -> the ``metric`` of each seed's run ``run`` at that iteration (the seeds that logged it)."""
    points: dict[int, list[float]] = {}
    for seed in seeds:
        for row in read_rows(out / f"{run}_seed{seed}"):
            if row.get(metric) is not None and row.get(ITERATION) is not None:
                points.setdefault(int(row[ITERATION]), []).append(float(row[metric]))
    return dict(sorted(points.items()))


def plot_curves(out: Path, table: Table, runs: tuple[Run, ...], seeds: list[int]) -> list[tuple[str, str]]:
    """Each of the table's ``Curves`` with any picked run that logged its metric, as ``out/<name>.png``: one curve
    per run, the mean over seeds at each iteration with a ±1 std band -> (title, file name) of those drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.ticker import MaxNLocator

    picked, drawn = {run.name for run in runs}, []
    for curves in table.curves:
        sign = -1.0 if curves.negate else 1.0
        lines = {name: curve_points(out, name, seeds, curves.metric) for name in curves.runs if name in picked}
        lines = {name: points for name, points in lines.items() if points}
        if not lines:
            continue
        fig, ax = plt.subplots(figsize=(6, 4))
        for name, points in lines.items():
            x = np.array(list(points))
            mean = sign * np.array([np.mean(v) for v in points.values()])
            std = np.array([np.std(v) for v in points.values()])
            seeds_seen = max(len(v) for v in points.values())
            ax.plot(x, mean, marker="o", label=f"{name} ({seeds_seen} seed{'s' * (seeds_seen > 1)})")
            ax.fill_between(x, mean - std, mean + std, alpha=0.2)
        ylabel = f"cost (-{curves.metric})" if curves.negate else curves.metric
        ax.set(title=curves.title, xlabel="iteration", ylabel=ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
        ax.legend(fontsize="small")
        fig.savefig(out / f"{curves.name}.png", bbox_inches="tight")
        plt.close(fig)
        drawn.append((curves.title, f"{curves.name}.png"))
    return drawn


def final_returns(out: Path, run: str, seeds: list[int]) -> list[float]:
    """The last ``AverageReturn`` of each seed's run ``run`` (the seeds that logged one)."""
    finals = []
    for seed in seeds:
        rows = read_rows(out / f"{run}_seed{seed}")
        finals += [row["AverageReturn"] for row in rows if row.get("AverageReturn") is not None][-1:]
    return finals


def plot_budget(out: Path, budgets: Budgets, picked: set[str], seeds: list[int]) -> bool:
    """``out/<budgets.name>.png`` from the picked runs with a return -> whether it was drawn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker
    import numpy as np

    lines: dict[str, list[tuple[int, list[float]]]] = {}
    for group, run, budget in budgets.points:
        finals = final_returns(out, run, seeds) if run in picked else []
        if finals:
            lines.setdefault(group, []).append((budget, finals))
    if not lines:
        return False
    fig, ax = plt.subplots(figsize=(6, 4))
    for group, points in lines.items():
        points.sort()
        x = np.array([budget for budget, _ in points])
        mean = np.array([np.mean(finals) for _, finals in points])
        std = np.array([np.std(finals) for _, finals in points])
        seeds_seen = max(len(finals) for _, finals in points)
        name = f"{group} ({seeds_seen} seed{'s' * (seeds_seen > 1)})"
        ax.errorbar(x, mean, yerr=std, marker="o", capsize=3, label=name)
    ax.set(title=budgets.title, xlabel=budgets.xlabel, ylabel="final AverageReturn (mean ± std over seeds)")
    ax.set_xscale("log")  # budgets grow by factors; ticks at the budgets drawn, as plain numbers
    ticks: list[int] = []
    for budget in sorted({budget for points in lines.values() for budget, _ in points}):
        if not ticks or budget > 1.1 * ticks[-1]:  # one tick for budgets within 10% (185 and 186)
            ticks.append(budget)
    ax.set_xticks(ticks, [str(b) for b in ticks])
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    ax.grid(alpha=0.3)
    ax.legend(fontsize="small")
    fig.savefig(out / f"{budgets.name}.png", bbox_inches="tight")
    plt.close(fig)
    return True


def plot_budgets(out: Path, table: Table, runs: tuple[Run, ...], seeds: list[int]) -> list[tuple[str, str]]:
    """Each of the table's ``Budgets`` with a picked run that has a return -> (title, file name) of those drawn."""
    picked = {run.name for run in runs}
    return [(b.title, f"{b.name}.png") for b in table.budgets if plot_budget(out, b, picked, seeds)]
