#!/usr/bin/env python
"""Watch a trained agent: play N episodes with it and write them into one mp4.

  python scripts/export_video.py --run runs/state_HalfCheetah-v5_20250101-120000
  python scripts/export_video.py --run /tmp/smoke --episodes 3 --out cheetah.mp4 --fps 30
  python scripts/export_video.py --run /tmp/pixels --side-by-side      # real frame | model's reconstruction

The run folder's policy.pt (or --policy FILE, e.g. one handed over on its own) says which agent
it holds (state or pixels) and gives its config and trained weights; nothing else of the run is
read, and nothing in the file is executed. State agents are filmed from the environment's
tracking camera; pixel agents from the frames they see, upscaled 4x. Prints the return of
each episode and where the video is.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.errors import UserError, exit_code  # noqa: E402

DEFAULT_NAME = "rollout.mp4"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/export_video.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--run", type=Path, required=True, metavar="LOGDIR", help="run folder of a training run")
    parser.add_argument(
        "--policy", "--checkpoint", dest="policy", type=Path, metavar="FILE",
        help="policy file to load (default: LOGDIR/policy.pt, the latest; --checkpoint is its older name)",
    )
    parser.add_argument("--episodes", type=int, default=1, help="episodes to play, one after the other (default: 1)")
    parser.add_argument("--out", type=Path, help=f"mp4 file to write (default: LOGDIR/{DEFAULT_NAME})")
    parser.add_argument(
        "--fps", type=float, help="frames per second of the video (default: real time for the environment)"
    )
    parser.add_argument(
        "--side-by-side",
        action="store_true",
        help="pixel agent only: the model's reconstruction of each frame beside the real frame",
    )
    parser.add_argument(
        "--shadows",
        action="store_true",
        help="state agent only: render shadows and reflections (prettier, about 8x slower on CPU)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the environment's first episode (default: 0)")
    parser.add_argument(
        "--device", choices=["auto", "cpu", "cuda"], default="auto", help="where the agent runs (default: auto)"
    )
    return parser


def agent_kind(args: argparse.Namespace) -> str:
    """``"state"`` or ``"pixels"``: the agent the policy file says it holds."""
    from worldmodel.checkpoint import load_policy

    if not args.run.is_dir():
        raise UserError(f"no run folder at {args.run}")
    if args.policy is None and not (args.run / "config.yaml").is_file():
        raise UserError(f"{args.run} holds no run (no config.yaml); pass the --run folder of a training run")
    return load_policy(args.policy or args.run, kind=None)["kind"]


def check_args(args: argparse.Namespace) -> None:
    if args.episodes < 1:
        raise UserError(f"--episodes must be >= 1, got {args.episodes}")
    if args.fps is not None and args.fps <= 0:
        raise UserError(f"--fps must be > 0, got {args.fps}")
    if args.out is not None and args.out.suffix.lower() != ".mp4":
        raise UserError(f"--out must name an .mp4 file, got {args.out}")
    if args.policy is not None and not args.policy.is_file():
        raise UserError(f"policy file not found: {args.policy}")


def export_state(args: argparse.Namespace):
    from worldmodel.agents.state_agent import load_agent
    from worldmodel.logging.rollout import record_state_episode

    if args.side_by_side:
        raise UserError(
            "--side-by-side needs a pixel agent (it shows the model's reconstruction); this run is a state agent"
        )
    policy = load_agent(args.run, policy_file=args.policy, device=args.device)
    envs = policy.make_env(num_envs=1)
    try:
        rollouts = []
        for i in range(args.episodes):
            policy.reset()
            rollouts.append(record_state_episode(envs, policy.act, seed=args.seed + i, shadows=args.shadows))
            report_episode(i, rollouts[-1])
    finally:
        envs.close()
    return rollouts


def export_pixels(args: argparse.Namespace):
    from worldmodel.agents.pixel_agent import load_agent
    from worldmodel.logging.rollout import pixel_env_fps, record_pixel_episode

    policy = load_agent(args.run, policy_file=args.policy, device=args.device)
    envs = policy.make_envs(num_envs=1, seed=args.seed)
    try:
        fps = pixel_env_fps(envs)
        rollouts = []
        for i in range(args.episodes):
            rollouts.append(record_pixel_episode(envs, policy, side_by_side=args.side_by_side, fps=fps))
            report_episode(i, rollouts[-1])
    finally:
        envs.close()
    return rollouts


def report_episode(index: int, rollout) -> None:
    print(f"episode {index + 1}: return {rollout.episode_return:.2f} over {len(rollout)} steps", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a backend
    def export() -> None:
        check_args(args)
        kind = agent_kind(args)
        rollouts = export_pixels(args) if kind == "pixels" else export_state(args)

        import numpy as np

        from worldmodel.logging.logger import write_mp4

        out = args.out or args.run / DEFAULT_NAME
        fps = args.fps or rollouts[0].fps
        frames = np.concatenate([r.frames for r in rollouts])  # (sum T, H, W, 3)
        write_mp4(out, frames, fps=fps)
        returns = [r.episode_return for r in rollouts]
        print(f"mean return {np.mean(returns):.2f} over {len(returns)} episode(s) of the {kind} agent")
        print(f"wrote {out} ({len(frames)} frames at {fps:g} fps)")

    return exit_code(export)


if __name__ == "__main__":
    sys.exit(main())
