#!/usr/bin/env python
"""Reproduce a seed's table with one command: every run it needs, then the table beside the seed's.

  python scripts/reproduce.py seed001 --out runs/seed001                  # RS, CEM, CEM H=1, CEM K=50 x 3 seeds
  python scripts/reproduce.py seed001 --scale lite --out /tmp/t           # the same findings in <= 20 min on 2 CPU cores
  python scripts/reproduce.py seed000 --seeds 0 1 2 --device cuda --out runs/seed000
  python scripts/reproduce.py seed001 --out runs/seed001 logger=none      # extra overrides for every run

Tables:
  seed001  CS285 hw4 on its cheetah (1000-step episodes): random shooting, CEM, CEM with horizon 1,
           CEM with 50 candidates; final AverageReturn (mean of 10 evaluation episodes) per run.
  seed000  the 2017 homework's iteration 0: the random-shooting controller's return after training on
           10 random episodes, and DynamicsMSE, with and without delta normalisation.

Each run is a normal run folder DIR/<row>_seed<N> (config.yaml, metrics.jsonl, loss curves, checkpoint),
trained by train/agent.py's code in its own process through the sweep's trial runner
(worldmodel/sweep.py: one run at a time here, or --parallel N on Ray where it is installed); its output
goes to DIR/logs/<row>_seed<N>.log and DIR/sweep.json records each run's status. Calling the command again
skips finished runs and resumes unfinished ones from their checkpoint; a run whose process dies is resumed
up to --max-retries times. At the end it writes DIR/table.md (ours: mean +- std over seeds, and the mean
std within a run, beside the seed's figure), DIR/table.json and DIR/returns.png.

--scale full uses the seed's settings exactly (configs/state_halfcheetah_{rs,cem}.yaml): meant for a GPU;
on 2 CPU cores seed 001's table takes about 8.5 hours a seed (scripts/estimate_state_run.py: RS 3.7 h,
CEM 4.2 h, H=1 and K=50 0.3 h each; RESULTS.md). --scale lite shrinks them (see LITE below) and runs one
seed unless --seeds says otherwise.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.errors import UserError, exit_code  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARKER = "reproduce.json"  # which table and scale a folder holds
IGNORED_KEYS = ("device", "logger", "wandb")  # settings that do not change the experiment


@dataclass(frozen=True)
class Run:
    """One configuration of a table, run once per seed."""

    name: str
    config: str
    overrides: tuple[str, ...] = ()
    lite: tuple[str, ...] = ()
    """Extra overrides at --scale lite."""


@dataclass(frozen=True)
class Row:
    """One line of a table: a metric of a run's final (or given) iteration, and the seed's figure."""

    name: str
    run: str
    label: str
    reference: float | None
    reference_std: float | None = None
    metric: str = "AverageReturn"
    iteration: int | None = None
    """Read this iteration's row; None: the last row that has the metric."""


@dataclass(frozen=True)
class Table:
    name: str
    source: str
    runs: tuple[Run, ...]
    rows: tuple[Row, ...]
    findings: tuple[tuple[str, Callable[[dict[str, float], float], bool]], ...] = field(default=())
    """(claim, check(means by row name, the random policy's return)): the seed's findings, checked on ours."""


# Lite: the same env and algorithm with 500-step episodes, 3 iterations of 2 collected and 3 evaluation
# episodes, 500 training steps, and fewer candidates for random shooting (500) and CEM (100): about
# 1/20 of the full table's compute, so it fits 20 minutes on 2 CPU cores (RESULTS.md has the measured time).
LITE_COMMON = (
    "env.episode_length=500",
    "env.num_envs=5",
    "train.train_steps=500",
    "train.iterations=3",
    "train.random_episodes=10",
    "train.mpc_episodes=2",
    "train.eval_episodes=3",
)
SEED001 = Table(
    name="seed001",
    source="seed 001 (CS285 hw4 via CAS4160 HW6), Tables 1 and 2: mean and std over its 10 evaluation episodes, one run",
    runs=(
        Run("rs", "configs/state_halfcheetah_rs.yaml", lite=LITE_COMMON + ("planner.candidates=500",)),
        Run("cem", "configs/state_halfcheetah_cem.yaml", lite=LITE_COMMON + ("planner.candidates=100",)),
        Run("cem_h1", "configs/state_halfcheetah_cem.yaml", ("planner.horizon=1",), LITE_COMMON),
        Run("cem_k50", "configs/state_halfcheetah_cem.yaml", ("planner.candidates=50",), LITE_COMMON),
    ),
    rows=(
        Row("rs", "rs", "random shooting", 873.31, 49.89),
        Row("cem", "cem", "CEM", 2302.62, 42.94),
        Row("cem_h1", "cem_h1", "CEM, horizon 1", -22422.16, 10189.61),
        Row("cem_k50", "cem_k50", "CEM, 50 candidates", 1282.38, 59.10),
    ),
    findings=(
        ("cem > rs > random policy", lambda m, random: m["cem"] > m["rs"] > random),
        ("cem_h1 far below rs and cem (below the random policy)", lambda m, random: m["cem_h1"] < random),
        ("cem_k50 between rs and cem", lambda m, random: m["rs"] < m["cem_k50"] < m["cem"]),
    ),
)

# Seed 000 (2017): 10 random paths of 1000 steps, one network 2x500, 60 epochs of batch 512 over the
# 10,000 transitions (~1172 steps), 1000 random-shooting paths of horizon 15, 10 on-policy paths.
SEED000_MODEL = (
    "model.ensemble_size=1",
    "model.hidden_size=500",
    "train.train_steps=1172",
    "train.iterations=1",
    "train.random_episodes=10",
    "train.mpc_episodes=10",
    "train.eval_episodes=0",
    "train.collect_after_last=true",
    "env.num_envs=10",
)
SEED000_LITE = ("env.episode_length=500", "model.hidden_size=250", "train.train_steps=600", "planner.candidates=250")
SEED000 = Table(
    name="seed000",
    source="seed 000 (CS294-112 hw4, 2017), Fig. 1: iteration 0 of the random-shooting MPC controller (5 seeds)",
    runs=(
        Run("rs", "configs/state_halfcheetah_rs.yaml", SEED000_MODEL, SEED000_LITE),
        Run("rs_nodelta", "configs/state_halfcheetah_rs.yaml", SEED000_MODEL + ("model.delta_norm=false",), SEED000_LITE),
    ),
    rows=(
        Row("rs_itr0", "rs", "RS iteration-0 AverageReturn", 317.0, 16.3, iteration=0),
        Row("rs_itr0_mse", "rs", "RS iteration-0 DynamicsMSE", 0.291, None, metric="DynamicsMSE", iteration=0),
        Row("rs_nodelta_itr0", "rs_nodelta", "no delta normalisation: AverageReturn", None, iteration=0),
        Row("rs_nodelta_itr0_mse", "rs_nodelta", "no delta normalisation: DynamicsMSE", None, metric="DynamicsMSE", iteration=0),
    ),
    findings=(("rs_itr0 > random policy", lambda m, random: m["rs_itr0"] > random),),
)
TABLES = {table.name: table for table in (SEED001, SEED000)}


# ---- run folders ----------------------------------------------------------------------------


def run_overrides(run: Run, seed: int, scale: str, device: str, extra: list[str]) -> list[str]:
    lite = list(run.lite) if scale == "lite" else []
    return [*run.overrides, *lite, f"seed={seed}", f"device={device}", *extra]


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in IGNORED_KEYS}


def check_run_folder(logdir: Path, expected: dict[str, Any]) -> None:
    """Refuse a folder that holds files but no run, or a run of another config than the table's."""
    import yaml

    if not logdir.exists() or not any(logdir.iterdir()):
        return
    if not (logdir / "config.yaml").is_file():
        raise UserError(f"{logdir} holds files but no run (no config.yaml); move it away and run again")
    saved = yaml.safe_load((logdir / "config.yaml").read_text()) or {}
    if comparable(saved) != comparable(expected):
        differing = sorted(k for k in set(saved) | set(expected) if comparable(saved).get(k) != comparable(expected).get(k))
        raise UserError(
            f"{logdir} holds a run with a different config than this table expects (differs in: "
            f"{', '.join(differing)}); use another --out"
        )


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


def check_out_dir(out: Path, table: Table, scale: str) -> None:
    """Refuse a folder that belongs to another table (or scale), or lies inside one."""
    for parent in [out.resolve(), *out.resolve().parents]:
        marker = parent / MARKER
        if not marker.is_file():
            continue
        held = json.loads(marker.read_text())
        if parent != out.resolve():
            raise UserError(f"--out {out} lies inside {parent}, the folder of table {held['table']}; choose another --out")
        if (held.get("table"), held.get("scale")) != (table.name, scale):
            raise UserError(
                f"--out {out} holds table {held.get('table')} at scale {held.get('scale')}, not {table.name} at "
                f"scale {scale}; choose another --out"
            )


# ---- the table ------------------------------------------------------------------------------


def row_value(rows: list[dict[str, Any]], row: Row) -> tuple[float, float | None] | None:
    """(value, within-run std) of ``row`` in a run's metrics, or None when not there yet."""
    candidates = [r for r in rows if r.get(row.metric) is not None]
    if row.iteration is not None:
        candidates = [r for r in candidates if r.get("Iteration") == row.iteration]
    if not candidates:
        return None
    last = candidates[-1]
    within = last.get("StdReturn") if row.metric == "AverageReturn" else None
    return float(last[row.metric]), (float(within) if within is not None else None)


def build_table(table: Table, out: Path, seeds: list[int], scale: str) -> list[dict[str, Any]]:
    import numpy as np

    results = []
    for row in table.rows:
        values, withins, random_returns = [], [], []
        for seed in seeds:
            rows = read_rows(out / f"{row.run}_seed{seed}")
            found = row_value(rows, row)
            if found is None:
                continue
            values.append(found[0])
            if found[1] is not None:
                withins.append(found[1])
            random_returns += [r["RandomReturn"] for r in rows[:1] if r.get("RandomReturn") is not None]
        results.append(
            {
                "name": row.name,
                "label": row.label,
                "metric": row.metric,
                "mean": float(np.mean(values)) if values else None,
                "std": float(np.std(values)) if values else None,
                "seeds": len(values),
                "values": values,
                "within_run_std": float(np.mean(withins)) if withins else None,
                "reference": row.reference,
                "reference_std": row.reference_std,
                "random_policy_return": float(np.mean(random_returns)) if random_returns else None,
            }
        )
    return results


def check_findings(table: Table, rows: list[dict[str, Any]]) -> dict[str, bool | None]:
    """Each of the seed's findings -> true or false on our means (None while a row is missing)."""
    means = {r["name"]: r["mean"] for r in rows}
    randoms = [r["random_policy_return"] for r in rows if r["random_policy_return"] is not None]
    if any(value is None for value in means.values()) or not randoms:
        return {claim: None for claim, _ in table.findings}
    random = float(sum(randoms) / len(randoms))
    return {claim: bool(holds(means, random)) for claim, holds in table.findings}


def fmt(value: float | None, digits: int = 2) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def markdown(
    table: Table, rows: list[dict[str, Any]], findings: dict[str, bool | None], scale: str, command: str, wall_s: float
) -> str:
    digits = {"AverageReturn": 1, "DynamicsMSE": 3}
    lines = [
        f"# {table.name} ({scale} scale)",
        "",
        f"Command: `{command}`  ",
        f"Compute: {wall_s / 60:.1f} min in the runs (sum of their wall times).  ",
        f"Reference: {table.source}.",
        "",
        "| row | ours: mean ± std over seeds | seeds | mean std within a run | random policy | seed's figure |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        d = digits.get(r["metric"], 2)
        ours = "not measured" if r["mean"] is None else f"{r['mean']:.{d}f} ± {r['std']:.{d}f}"
        ref = "—" if r["reference"] is None else f"{r['reference']:.{d}f}"
        if r["reference_std"] is not None:
            ref += f" ± {r['reference_std']:.{d}f}"
        lines.append(
            f"| {r['label']} (`{r['name']}`) | {ours} | {r['seeds']} | {fmt(r['within_run_std'], d)} "
            f"| {fmt(r['random_policy_return'], 1)} | {ref} |"
        )
    lines += ["", "The seed's findings, on ours:", ""]
    lines += [f"- {claim}: {'not measured' if ok is None else ('yes' if ok else 'NO')}" for claim, ok in findings.items()]
    if scale == "lite":
        lines += ["", "Lite scale: smaller settings than the seed's, so compare the ordering, not the values."]
    return "\n".join(lines) + "\n\n![AverageReturn per iteration](returns.png)\n"


def plot(table: Table, out: Path, seeds: list[int]) -> Path:
    from worldmodel.report import load_run, plot_returns

    groups = {}
    for run in table.runs:
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


# ---- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/reproduce.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("table", metavar="TABLE", help=f"which table: {', '.join(TABLES)}")
    parser.add_argument("--seeds", type=int, nargs="*", help="seeds to run (default: 0 1 2 at full scale, 0 at lite)")
    parser.add_argument("--scale", choices=["full", "lite"], default="full", help="the seed's settings or smaller ones")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where models and planning run")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the runs and the table")
    parser.add_argument(
        "--parallel", type=int, default=1, metavar="N",
        help="runs at once, on a local Ray (1: one after another, no Ray needed; default 1)",
    )
    parser.add_argument(
        "--max-retries", type=int, default=2, metavar="N", help="resume a run whose process dies at most N times (2)"
    )
    parser.epilog = "Any other argument key.sub=value (anywhere on the line) overrides that field in every run."
    return parser


def reproduce(args: argparse.Namespace, command: str) -> None:
    from worldmodel.agents import state_agent
    from worldmodel.config import load_config, to_dict
    from worldmodel.sweep import Trial, run_trials

    if args.table not in TABLES:
        raise UserError(f"unknown table {args.table!r}; valid: {', '.join(TABLES)}")
    table = TABLES[args.table]
    seeds = args.seeds if args.seeds is not None else ([0, 1, 2] if args.scale == "full" else [0])
    if not seeds:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0 1 2")
    if args.parallel < 1 or args.max_retries < 0:
        raise UserError("--parallel must be >= 1 and --max-retries >= 0")
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UserError(f"unrecognized argument {bad[0]!r}; config overrides look like key.sub=value")
    out: Path = args.out
    check_out_dir(out, table, args.scale)

    # Every run's config is checked (and every existing folder compared) before anything runs.
    trials = []
    for run in table.runs:
        for seed in seeds:
            overrides = run_overrides(run, seed, args.scale, args.device, args.overrides)
            cfg = load_config(state_agent.StateAgentConfig, ROOT / run.config, overrides)
            check_run_folder(out / f"{run.name}_seed{seed}", to_dict(cfg))
            trials.append(Trial(f"{run.name}_seed{seed}", "state", str(ROOT / run.config), tuple(overrides)))
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"table": table.name, "scale": args.scale}) + "\n")

    started = time.perf_counter()
    print(f"{table.name} ({args.scale}): {len(trials)} runs; each run's output: {out / 'logs'}/<run>.log", flush=True)
    backend = "serial" if args.parallel == 1 else "auto"
    results = run_trials(trials, out, backend=backend, max_concurrent=args.parallel, max_retries=args.max_retries)
    failed = [result.name for result in results if result.status == "failed"]

    rows = build_table(table, out, seeds, args.scale)
    runs_wall = sum((read_rows(out / trial.name) or [{}])[-1].get("wall_time", 0.0) for trial in trials)
    invocation_s = time.perf_counter() - started
    findings = check_findings(table, rows)
    (out / "table.md").write_text(markdown(table, rows, findings, args.scale, command, runs_wall))
    result = {
        "table": table.name,
        "scale": args.scale,
        "seeds_run": seeds,
        "rows": rows,
        "findings": findings,
        "wall_s": runs_wall,
        "invocation_wall_s": invocation_s,
        "device": args.device,
        "command": command,
    }
    (out / "table.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(table, out, seeds)
    print((out / "table.md").read_text())
    print(f"wrote {out / 'table.md'}, {out / 'table.json'} and {out / 'returns.png'}", file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} run(s) failed ({', '.join(failed)}): see {out / 'logs'}; the table holds the rest")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, args.overrides = build_parser().parse_known_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    command = "python scripts/reproduce.py " + " ".join(argv)
    return exit_code(lambda: reproduce(args, command))


if __name__ == "__main__":
    sys.exit(main())
