#!/usr/bin/env python
"""Evaluate a trained pixel agent: N episodes without exploration noise, optionally with another planner.

  python scripts/evaluate_pixels.py --run runs/pixels_dmc-cartpole-swingup_20260101-120000 --episodes 10
  python scripts/evaluate_pixels.py --run RUN --episodes 10 planner.candidates=1000 planner.horizon=12 \\
      planner.iterations=10 planner.elites=100        # is the model or the planner the limit?

Runs up to --envs episodes at a time (one planner call for all of them per step). Prints the return of each
episode, their mean and std, and as its last line JSON with keys ``mean``, ``std``, ``returns``, ``seconds``,
``planner``. Only ``planner.*`` can be overridden (``model.plan_sample`` is ``planner.sample``'s older name): the
rest is the trained model.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.cli import parse_with_overrides  # noqa: E402
from worldmodel.errors import UserError, exit_code  # noqa: E402

CHANGEABLE = ("planner.", "model.plan_sample=")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/evaluate_pixels.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, metavar="LOGDIR", help="run folder of a pixel run")
    parser.add_argument(
        "--policy", "--checkpoint", dest="policy", type=Path, metavar="FILE",
        help="policy file to load (default: LOGDIR/policy.pt; --checkpoint is its older name)",
    )
    parser.add_argument("--episodes", type=int, default=10, help="episodes to evaluate (default: 10)")
    parser.add_argument("--envs", type=int, default=5, help="episodes played at a time (default: 5)")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the environments (default: 1000)")
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="where the agent runs (default: auto)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key.sub=value", help="planner.*, e.g. planner.horizon=12 planner.sample=true"
    )
    return parser


def check_args(args: argparse.Namespace) -> None:
    if args.episodes < 1 or args.envs < 1:
        raise UserError(f"--episodes and --envs must be >= 1, got {args.episodes} and {args.envs}")
    for override in args.overrides:
        if not override.startswith(CHANGEABLE):
            raise UserError(f"only planner.* can change for evaluation, got {override}")


def evaluate(args: argparse.Namespace) -> dict:
    import numpy as np

    from worldmodel.agents.pixel_agent import load_agent
    from worldmodel.envs.pixel_episodes import run_episodes

    policy = load_agent(args.run, policy_file=args.policy, device=args.device, overrides=args.overrides)
    returns: list[float] = []
    started = time.perf_counter()
    while len(returns) < args.episodes:
        count = min(args.envs, args.episodes - len(returns))
        envs = policy.make_envs(num_envs=count, seed=args.seed + len(returns))
        try:
            policy.reset()
            episodes = run_episodes(envs, lambda obs: policy.act(obs, explore=False), desc="evaluate")
        finally:
            envs.close()
        for value in episodes.returns.tolist():
            print(f"episode {len(returns) + 1}: return {value:.1f}", flush=True)
            returns.append(value)
    cfg = policy.planner.cfg
    planner = f"{cfg.kind} {cfg.candidates} x H{cfg.horizon} x {cfg.iterations}, top {cfg.elites}"
    result = {"mean": float(np.mean(returns)), "std": float(np.std(returns)), "returns": returns}
    return {**result, "seconds": time.perf_counter() - started, "planner": planner}


def main(argv: list[str] | None = None) -> int:
    args = parse_with_overrides(build_parser(), argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a backend

    def run() -> None:
        check_args(args)
        result = evaluate(args)
        print(f"{result['planner']}: return {result['mean']:.1f} ± {result['std']:.1f} over {args.episodes} episodes")
        print(json.dumps(result))

    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
