"""Train a model-based RL agent.

  python train/agent.py --obs state                       # ensemble MPC on HalfCheetah-v5 (CPU default)
  python train/agent.py --obs state --config configs/state_halfcheetah_cem.yaml --env cheetah-cs285
  python train/agent.py --obs state planner.horizon=1     # any config field, dotted, anywhere on the line
  python train/agent.py --obs state --config configs/state_mujoco.yaml --env Hopper-v5   # any MuJoCo body, 100k steps
  python train/agent.py --obs pixels --env dmc:cartpole-swingup
  python train/agent.py --config configs/pixels_planet.yaml --env dmc:walker-walk --device cuda   # PlaNet, any task
  python train/agent.py --resume runs/<run>              # continue a run (its config names its agent)

Every run writes config.yaml (the resolved config), metrics.jsonl and plots into --logdir.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys
from pathlib import Path

from worldmodel.agents import agent_spec, choose_agent
from worldmodel.errors import exit_code

OVERRIDE = re.compile(r"^[A-Za-z_][\w.\-]*=")  # key.sub=value


def parse_with_overrides(parser: argparse.ArgumentParser, argv: list[str] | None) -> argparse.Namespace:
    """Parse flags with ``parser`` and collect ``key.sub=value`` overrides from anywhere on the line
    into ``args.overrides`` (in order). A token that is neither is an ``error:`` (exit 2).

    ``parser`` declares ``overrides`` as a ``nargs="*"`` positional, for ``--help``; a token that
    is the value of a flag (``--grid planner.horizon=1,2``) stays with its flag.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    takes_one_value = [
        option
        for action in parser._actions  # argparse has no public list of its options
        if action.option_strings and action.nargs in (None, 1)
        for option in action.option_strings
    ]
    flags: list[str] = []
    overrides: list[str] = []
    value_expected = False
    for token in argv:
        if not value_expected and OVERRIDE.match(token):
            overrides.append(token)
        else:
            flags.append(token)
        # An option or a prefix of one (argparse's abbreviations) takes the next token; --opt=value does not.
        is_flag = token.startswith("-") and "=" not in token
        value_expected = is_flag and any(option.startswith(token) for option in takes_one_value)
    args, unknown = parser.parse_known_args(flags)
    strays = unknown + args.overrides
    if strays:
        parser.error(f"unrecognized argument {strays[0]!r}: flags are --name [value], config overrides key.sub=value")
    args.overrides = overrides
    return args


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="train/agent.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--obs",
        choices=["state", "pixels"],
        help="state: ensemble of MLPs on the simulator state, the env's reward and termination known or learned; "
        "pixels: RSSM world model learned from 64x64 frames, CEM in latent space "
        "(default: the agent the config names, else state; with --resume the run's own)",
    )
    parser.add_argument(
        "--env",
        help="environment: a gymnasium id (HalfCheetah-v5, Hopper-v5, Ant-v5, ...; state: any with continuous "
        "actions and flat observations), cheetah-cs285 (the homework's cheetah, state only) or dmc:DOMAIN-TASK "
        "(dm_control suite, e.g. dmc:walker-walk). Default: the config's env.id. A pixel env other "
        "than the config's also takes its own PlaNet action repeat, unless env.action_repeat=N is given too",
    )
    parser.add_argument("--config", type=Path, help="YAML config file (default: the built-in CPU default)")
    parser.add_argument(
        "--planner",
        choices=["rs", "cem", "icem", "mppi"],
        help="random shooting, CEM, iCEM (coloured noise, elites kept) or MPPI (TD-MPC2's) (sets planner.kind)",
    )
    parser.add_argument("--seed", type=int, help="random seed (sets seed)")
    parser.add_argument("--logdir", type=Path, help="run folder (default: runs/<obs>_<env>_<time>)")
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], help="where models and planning run (default: auto)"
    )
    parser.add_argument(
        "--resume", type=Path, metavar="LOGDIR", help="continue the run in LOGDIR from its last checkpoint"
    )
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="no progress bars or per-phase lines, only one summary line per iteration "
        "(bars are live on a terminal, one line per phase otherwise)",
    )
    parser.add_argument(
        "overrides",
        nargs="*",
        metavar="key.sub=value",
        help="override any config field, anywhere on the line, e.g. planner.horizon=1 model.ensemble_size=3",
    )
    return parser


def flag_overrides(args: argparse.Namespace) -> list[str]:
    """The named flags are shorthands for config overrides; explicit overrides come last and win."""
    pairs = {"env.id": args.env, "planner.kind": args.planner, "seed": args.seed, "device": args.device}
    return [f"{key}={value}" for key, value in pairs.items() if value is not None] + list(args.overrides)


def resolve_obs(args: argparse.Namespace) -> str:
    """The agent: the one the config (the resumed run's config.yaml, or --config) names, which --obs may
    repeat but not contradict; else --obs; else state."""
    return choose_agent(args.obs, args.resume / "config.yaml" if args.resume is not None else args.config)


def interrupt_once_on_sigint_or_sigterm() -> None:
    """SIGTERM (a scheduler or a sweep stopping the run) checkpoints like Ctrl-C does. The first of
    them is the one handled: the handler ignores both before it raises, so a second one (a sweep's
    Ctrl-C reaches the run and its Ray worker, which then sends SIGTERM) cannot cut the
    checkpoint short, however soon it comes."""

    def handler(signum, frame):
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, signal.SIG_IGN)
        raise KeyboardInterrupt

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    args = parse_with_overrides(build_parser(), argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a backend

    def run() -> None:
        from worldmodel import runner
        from worldmodel.logging.progress import set_quiet

        set_quiet(args.quiet)
        runner.train(agent_spec(resolve_obs(args)), args.config, flag_overrides(args), args.logdir, args.resume)

    return exit_code(run)


if __name__ == "__main__":
    interrupt_once_on_sigint_or_sigterm()
    sys.exit(main())
