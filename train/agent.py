#!/usr/bin/env python
"""Train a model-based RL agent.

  python train/agent.py --obs state                       # ensemble MPC on HalfCheetah-v5 (CPU default)
  python train/agent.py --obs state --config configs/state_halfcheetah_cem.yaml --env cheetah-cs285
  python train/agent.py --obs state planner.horizon=1     # any config field, dotted
  python train/agent.py --obs pixels --env dmc:cartpole-swingup

Every run writes config.yaml (the resolved config), metrics.jsonl and plots into --logdir.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.errors import exit_code  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train/agent.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--obs",
        choices=["state", "pixels"],
        default="state",
        help="state: ensemble of MLPs on the simulator state with a known reward; "
        "pixels: RSSM world model learned from 64x64 frames, CEM in latent space (default: state)",
    )
    parser.add_argument(
        "--env",
        help="environment: a gymnasium id (HalfCheetah-v5), cheetah-cs285 (the homework's cheetah, state only) "
        "or dmc:DOMAIN-TASK (dm_control suite, pixels only). Default: the config's env.id",
    )
    parser.add_argument("--config", type=Path, help="YAML config file (default: the built-in CPU default)")
    parser.add_argument("--planner", choices=["rs", "cem"], help="random shooting or CEM (sets planner.kind)")
    parser.add_argument("--seed", type=int, help="random seed (sets seed)")
    parser.add_argument("--logdir", type=Path, help="run folder (default: runs/<obs>_<env>_<time>)")
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], help="where models and planning run (default: auto)"
    )
    parser.add_argument(
        "--resume", type=Path, metavar="LOGDIR", help="continue the run in LOGDIR from its last checkpoint"
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="override any config field, e.g. planner.horizon=1 model.ensemble_size=3 train.iterations=2",
    )
    return parser


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The named flags are shorthands for config overrides; explicit overrides come last and win."""
    pairs = {"env.id": args.env, "planner.kind": args.planner, "seed": args.seed, "device": args.device}
    return [f"{key}={value}" for key, value in pairs.items() if value is not None] + list(args.overrides)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a backend
    def train() -> None:
        if args.obs == "state":
            from worldmodel.agents import state_agent as agent
        else:
            from worldmodel.agents import pixel_agent as agent
        agent.main(config_path=args.config, overrides=flag_overrides(args), logdir=args.logdir, resume=args.resume)

    return exit_code(train)

if __name__ == "__main__":
    sys.exit(main())
