#!/usr/bin/env python
"""Run a sweep on Ray: every seed x every grid value, each trial a normal run folder DIR/<name>/.

  python train/sweep.py --obs state --config configs/state_smoke.yaml --seeds 0 1 2 --out sweeps/smoke
  python train/sweep.py --obs state --config configs/state_halfcheetah_cem.yaml --seeds 0 1 \\
      --grid planner.horizon=5,15 --grid planner.candidates=200,1000 --out sweeps/cem logger=none
  python train/sweep.py ... --address auto            # the same sweep on a running Ray cluster
  python train/sweep.py ... --report-only             # only (re)write DIR/report.md and DIR/report.json

Running the same command again skips finished trials and resumes the others from their checkpoints;
Ctrl-C leaves every trial resumable. Needs Ray: pip install -e '.[sweep]'.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.cli import parse_with_overrides  # noqa: E402
from worldmodel.errors import exit_code  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train/sweep.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--obs", choices=["state", "pixels"], help="which agent (default: the one the config names, else state)"
    )
    parser.add_argument("--config", type=Path, help="YAML config file of every trial (default: the agent's default)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], metavar="N", help="seeds (default: 0)")
    parser.add_argument(
        "--grid",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config field and its values; repeat for a cross product (values may not hold commas)",
    )
    parser.add_argument("--out", type=Path, required=True, metavar="DIR", help="the sweep's folder")
    parser.add_argument(
        "--address", help="a running Ray cluster: auto, or ray://HOST:PORT (default: start a local Ray here)"
    )
    parser.add_argument("--cpus-per-run", type=float, default=1, metavar="N", help="CPUs Ray reserves per trial (1)")
    parser.add_argument("--gpus-per-run", type=float, default=0, metavar="F", help="GPUs per trial, e.g. 0.5 (0)")
    parser.add_argument("--max-concurrent", type=int, metavar="K", help="trials at once (default: as resources allow)")
    parser.add_argument(
        "--max-retries", type=int, default=2, metavar="N", help="resume a trial whose process dies at most N times (2)"
    )
    parser.add_argument(
        "--report-only", action="store_true", help="write the report from the trials' folders, run nothing"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key.sub=value", help="config overrides for every trial, anywhere on the line"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = parse_with_overrides(build_parser(), argv)

    def sweep() -> None:
        from worldmodel import sweep as sweeps
        from worldmodel.agents import choose_agent
        from worldmodel.errors import UserError

        if args.max_retries < 0 or (args.max_concurrent is not None and args.max_concurrent < 1):
            raise UserError("--max-retries must be >= 0 and --max-concurrent >= 1")
        agent = choose_agent(args.obs, args.config)
        trials = sweeps.sweep_trials(agent, args.config, args.seeds, sweeps.parse_grid(args.grid), args.overrides)
        if not args.report_only:
            if args.config is not None and not args.config.is_file():
                raise UserError(f"config file not found: {args.config}")
            results = sweeps.run_trials(
                trials,
                args.out,
                address=args.address,
                cpus_per_run=args.cpus_per_run,
                gpus_per_run=args.gpus_per_run,
                max_concurrent=args.max_concurrent,
                max_retries=args.max_retries,
            )
            print(f"sweep: {sweeps.summary(results)}", flush=True)
        written = sweeps.write_sweep_report(trials, args.out)
        if written is None:
            print(f"sweep: no trial in {args.out} has an AverageReturn yet, so no report", flush=True)
        else:
            print(f"sweep: report in {written[0]} and {written[1]}", flush=True)

    return exit_code(sweep)


if __name__ == "__main__":
    sys.exit(main())
