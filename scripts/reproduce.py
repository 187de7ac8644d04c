#!/usr/bin/env python
"""Reproduce a published table with one command: every run it needs, then the table beside the source's.

  python scripts/reproduce.py seed001 --out runs/seed001                  # RS, CEM, CEM H=1, CEM K=50 x 3 seeds
  python scripts/reproduce.py seed001 --scale lite --out /tmp/t           # the same findings in <= 20 min on 2 CPU cores
  python scripts/reproduce.py seed000 --device cuda --out runs/seed000             # 3 seeds, the 2017 settings
  python scripts/reproduce.py seed000 --scale lite --out runs/seed000_lite        # the same figures on 2 CPU cores
  python scripts/reproduce.py planet --scale cpu --tasks cartpole-swingup walker-walk --out runs/planet
  python scripts/reproduce.py planet --scale gpu --device cuda --out runs/planet_gpu   # 100k and 500k rows
  python scripts/reproduce.py mujoco --scale cpu --tasks HalfCheetah-v5 --out runs/mujoco
  python scripts/reproduce.py dmc_state --tasks cheetah-run --out runs/dmc_state   # dm_control from states
  python scripts/reproduce.py planners --tasks cem_100 icem_25 mppi_25 --out runs/planners   # return per budget
  python scripts/reproduce.py planners_pixels --tasks icem_25 mppi_25 --out runs/planners_pixels   # the same, pixels
  python scripts/reproduce.py seed001 --out runs/seed001 logger=none      # extra overrides for every run

Tables (worldmodel/tables/; each declares its scales, the first the default):
  seed001  CS285 hw4 on its cheetah: random shooting, CEM, CEM with horizon 1, CEM with 50 candidates; final
           AverageReturn per run. Scales full (the seed's settings, seeds 0 1 2) and lite (seed 0).
  seed000  the 2017 homework (seed 000): random shooting's iteration-0 return and DynamicsMSE, with and without
           delta normalisation; then over 15 on-policy iterations with and without aggregation (its Figs. 2-5),
           the BPTT policy (Fig. 6), policy-guided MPC against uniform random shooting (Fig. 7) and DAgger.
           Scales full (GPU, seeds 0 1 2), lite (2 CPU cores, seeds 0 1 2) and smoke (tests).
  planet   the pixel agent on PlaNet's six DeepMind Control tasks at their PlaNet action repeats, evaluation
           return at 100k env steps (and 500k at --scale gpu) beside PlaNet, Dreamer and DreamerV3. Scales cpu
           (configs/pixels_cartpole_100k_cpu.yaml; on every task but cartpole-swingup with 2 envs at once and 90
           gradient steps an episode; iCEM on finger-spin; seed 0; RESULTS.md has its times), gpu
           (configs/pixels_planet.yaml to 500k env steps, seeds 0 1 2) and smoke (tests).
  mujoco   the state agent (configs/state_mujoco.yaml) on HalfCheetah, Hopper, Walker2d and Ant v5,
           AverageReturn at 100k env steps beside MBBL's PETS-CEM. Scales cpu, gpu (seeds 0 1 2) and smoke.
  dmc_state the state agent (configs/state_dmc.yaml, the reward learned) on cartpole-swingup, cheetah-run and
           walker-walk from their states at PlaNet's action repeats, AverageReturn at 100k env steps beside
           TD-MPC2's state figure and the random policy. Scales cpu (seeds 0 1 2) and smoke.
  planners make run's HalfCheetah with random shooting, CEM, iCEM and MPPI at 25%, 50% and 100% of CEM 250 x 3's
           750 sequences a planner call (runs rs_25 ... mppi_100), and the reference CEM 1000 x 4 (cem_1000x4, 4000
           sequences): final AverageReturn, and budgets.png (return against sequences a call). Scales cpu (seeds
           0 1 2; 4-12 min a run on 2 cores, cem_1000x4 longer: RESULTS.md) and smoke.
  planners_pixels  the pixel agent's CPU cartpole config (configs/pixels_cartpole_100k_cpu.yaml) with CEM, iCEM
           and MPPI at 25%, 50% and 100% of its CEM 100 x 4's 400 sequences a call (runs cem_25 ... mppi_100):
           evaluation return at 100k env steps, and budgets.png. Scales cpu (seeds 0 1 2) and smoke.
--tasks picks some of a table's runs (default: all, in the table's order); its rows on other runs are left out.

Each run is a normal run folder DIR/<run>_seed<N> (config.yaml, metrics.jsonl, checkpoint, ...), trained by
train/agent.py's code in its own process through the sweep's trial runner (worldmodel/sweep.py: one run at a
time here, or --parallel N on Ray where it is installed); its output goes to DIR/logs/<run>_seed<N>.log and
DIR/sweep.json records each run's status. Calling the command again skips finished runs and resumes
unfinished ones from their checkpoint; a run whose process dies is resumed up to --max-retries times
(--table-only writes the table from what --out holds and starts no run). At the end it writes DIR/table.md
(ours: mean +- std over seeds, where each figure was read, beside the published columns), DIR/table.json and
DIR/returns.png, and for seed000 one PNG per figure of the seed beside them (DIR/fig2_dynamics_mse.png, ...:
curves over the iterations, mean ± std over seeds), and for planners DIR/budgets.png. worldmodel/tables/results.py says which metrics row a figure is read from (an iteration, the
evaluation nearest below an env step count, or the last).

seed001 --scale full is meant for a GPU: on 2 CPU cores it takes about 8.5 hours a seed
(scripts/estimate_state_run.py: RS 3.7 h, CEM 4.2 h, H=1 and K=50 0.3 h each; RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.errors import UserError, exit_code  # noqa: E402
from worldmodel.tables import SEED000, SEED001, TABLES  # noqa: E402,F401  (SEED000, SEED001: for tests)
from worldmodel.tables.results import (  # noqa: E402
    build_table,
    check_findings,
    markdown,
    plot,
    plot_budgets,
    plot_curves,
    read_rows,
)
from worldmodel.tables.types import Run, Table  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MARKER = "reproduce.json"  # which table and scale a folder holds
IGNORED_KEYS = ("device", "logger", "wandb")  # settings that do not change the experiment


# ---- run folders ----------------------------------------------------------------------------


def run_overrides(run: Run, seed: int, scale: str, device: str, extra: list[str]) -> list[str]:
    return [*run.overrides_at(scale), f"seed={seed}", f"device={device}", *extra]


def run_config(table: Table, run: Run, scale: str) -> Path:
    config = run.config or table.scale(scale).config
    assert config is not None, f"table {table.name}: run {run.name} names no config and scale {scale} none either"
    return ROOT / config


def plan_trials(table: Table, scale: str, runs: tuple[Run, ...], seeds: list[int], device: str, extra: list[str]):
    """(Trial, its resolved config) for every run and seed; a bad override is one error here, before anything runs."""
    from worldmodel.agents import agent_spec
    from worldmodel.config import load_config
    from worldmodel.sweep import Trial

    config_class = agent_spec(table.agent).config_class
    planned = []
    for run in runs:
        config = run_config(table, run, scale)
        for seed in seeds:
            overrides = run_overrides(run, seed, scale, device, extra)
            cfg = load_config(config_class, config, overrides)
            planned.append((Trial(f"{run.name}_seed{seed}", table.agent, str(config), tuple(overrides)), cfg))
    return planned


def comparable(config: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in config.items() if key not in IGNORED_KEYS}


def check_run_folder(logdir: Path, expected: Any) -> None:
    """Refuse a folder that holds files but no run, or a run of another config than ``expected`` (the table's
    resolved config). The saved config is read as a resume reads it, so keys added since it was written count
    at their defaults (a run from before ``policy`` existed is a ``policy.kind=none`` run)."""
    from worldmodel.config import load_config, to_dict

    if not logdir.exists() or not any(logdir.iterdir()):
        return
    if not (logdir / "config.yaml").is_file():
        raise UserError(f"{logdir} holds files but no run (no config.yaml); move it away and run again")
    saved = to_dict(load_config(type(expected), logdir / "config.yaml"))
    expected = to_dict(expected)
    if comparable(saved) != comparable(expected):
        differing = sorted(k for k in set(saved) | set(expected) if comparable(saved).get(k) != comparable(expected).get(k))
        raise UserError(
            f"{logdir} holds a run with a different config than this table expects (differs in: "
            f"{', '.join(differing)}); use another --out"
        )


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



# ---- command line ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/reproduce.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    scales = "; ".join(f"{t.name}: {', '.join(s.name for s in t.scales)}" for t in TABLES.values())
    parser.add_argument("table", metavar="TABLE", help=f"which table: {', '.join(TABLES)}")
    parser.add_argument("--seeds", type=int, nargs="*", help="seeds to run (default: the scale's)")
    parser.add_argument("--scale", help=f"the table's settings or smaller ones ({scales}; default: the first)")
    parser.add_argument("--tasks", nargs="*", metavar="TASK", help="run only these of the table's runs (default: all)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="auto", help="where models and planning run")
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the runs and the table")
    parser.add_argument(
        "--parallel", type=int, default=1, metavar="N",
        help="runs at once, on a local Ray (1: one after another, no Ray needed; default 1)",
    )
    parser.add_argument(
        "--max-retries", type=int, default=2, metavar="N", help="resume a run whose process dies at most N times (2)"
    )
    parser.add_argument(
        "--table-only", action="store_true",
        help="start no run: write the table from the runs already in --out (a row averages the seeds that have "
        "its figure; the seeds column says how many), e.g. while some runs are still going or were gathered",
    )
    parser.epilog = "Any other argument key.sub=value (anywhere on the line) overrides that field in every run."
    return parser


def reproduce(args: argparse.Namespace, command: str) -> None:
    from worldmodel.sweep import run_trials

    if args.table not in TABLES:
        raise UserError(f"unknown table {args.table!r}; valid: {', '.join(TABLES)}")
    table = TABLES[args.table]
    scale = table.scale(args.scale or table.scales[0].name).name
    seeds = args.seeds if args.seeds is not None else list(table.scale(scale).seeds)
    if not seeds:
        raise UserError("--seeds needs at least one seed, e.g. --seeds 0 1 2")
    runs = table.pick_runs(args.tasks)
    if args.parallel < 1 or args.max_retries < 0:
        raise UserError("--parallel must be >= 1 and --max-retries >= 0")
    bad = [o for o in args.overrides if "=" not in o]
    if bad:
        raise UserError(f"unrecognized argument {bad[0]!r}; config overrides look like key.sub=value")
    out: Path = args.out
    check_out_dir(out, table, scale)
    if args.table_only and not (out / MARKER).is_file():
        raise UserError(f"--table-only writes the table of runs already in --out, and {out} holds no table's runs")

    # Every run's config is checked (and every existing folder compared) before anything runs.
    planned = plan_trials(table, scale, runs, seeds, args.device, args.overrides)
    for trial, cfg in planned:
        check_run_folder(out / trial.name, cfg)
    trials = [trial for trial, _ in planned]
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(json.dumps({"table": table.name, "scale": scale}) + "\n")

    started = time.perf_counter()
    failed = []
    if not args.table_only:
        print(f"{table.name} ({scale}): {len(trials)} runs; each run's output: {out / 'logs'}/<run>.log", flush=True)
        backend = "serial" if args.parallel == 1 else "auto"
        results = run_trials(trials, out, backend=backend, max_concurrent=args.parallel, max_retries=args.max_retries)
        failed = [result.name for result in results if result.status == "failed"]

    rows = build_table(table, out, seeds, table.rows_for(scale, runs))
    runs_wall = sum((read_rows(out / trial.name) or [{}])[-1].get("wall_time", 0.0) for trial in trials)
    invocation_s = time.perf_counter() - started
    findings = check_findings(table, rows)
    figures = plot_curves(out, table, runs, seeds) + plot_budgets(out, table, runs, seeds)
    (out / "table.md").write_text(markdown(table, rows, findings, scale, command, runs_wall, tuple(figures)))
    result = {
        "table": table.name,
        "scale": scale,
        "seeds_run": seeds,
        "tasks": [run.name for run in runs],
        "columns": [{"name": column.name, "source": column.source} for column in table.columns],
        "rows": rows,
        "findings": findings,
        "figures": [name for _, name in figures],
        "wall_s": runs_wall,
        "invocation_wall_s": invocation_s,
        "device": args.device,
        "command": command,
    }
    (out / "table.json").write_text(json.dumps(result, indent=2) + "\n")
    plot(out, runs, seeds)
    print((out / "table.md").read_text())
    pictures = ", ".join(name for _, name in [("", "returns.png"), *figures])
    print(f"wrote {out / 'table.md'}, {out / 'table.json'} and {pictures} in {out}", file=sys.stderr)
    if failed:
        raise UserError(f"{len(failed)} run(s) failed ({', '.join(failed)}): see {out / 'logs'}; the table holds the rest")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args, args.overrides = build_parser().parse_known_args(argv)
    if args.tasks:  # --tasks takes every word after it: the overrides among them (key=value) are overrides
        args.overrides += [word for word in args.tasks if "=" in word]
        args.tasks = [word for word in args.tasks if "=" not in word]
    os.environ.setdefault("MUJOCO_GL", "egl")
    command = "python scripts/reproduce.py " + " ".join(argv)
    return exit_code(lambda: reproduce(args, command))


if __name__ == "__main__":
    sys.exit(main())
