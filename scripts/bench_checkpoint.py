"""What a pixel run's checkpoint costs as its replay grows: wall time and bytes written per checkpoint,
at a few replay sizes, with the replay on disk (how runs save now) beside the replay pickled into the
checkpoint (how they saved before).

    python scripts/bench_checkpoint.py                                  # 10 and 500 episodes, PlaNet sizes
    python scripts/bench_checkpoint.py --episodes 10 100 --config configs/pixels_default.yaml

The replay holds cartpole-swingup episodes of 64x64 frames (126 frames each: 1000 env steps at
action repeat 8, plus the first frame); one episode is rendered and its frames are reused with a
per-episode shift, so filling 500 episodes takes seconds, not an hour of rendering. One gradient step
first, so the checkpoint holds Adam's moments as a run's does. Each figure is the median of --rounds saves. "episode_write_ms" is the one-time cost of writing one episode file,
paid as each episode arrives. Output: a table, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing
os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a backend; before mujoco loads

from worldmodel import runner  # noqa: E402
from worldmodel.agents import pixel_agent  # noqa: E402
from worldmodel.checkpoint import save_checkpoint  # noqa: E402
from worldmodel.config import load_config  # noqa: E402
from worldmodel.errors import UserError, exit_code  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "pixels_planet.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/bench_checkpoint.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--episodes", type=int, nargs="+", default=[10, 500], help="replay sizes (default: 10 500)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="pixel config (default: PlaNet's)")
    parser.add_argument("--rounds", type=int, default=3, help="saves timed per size (default: 3)")
    return parser


def rendered_episode(run: pixel_agent.PixelRun) -> dict[str, np.ndarray]:
    """One real episode of random actions: obs uint8 (T, C, H, W), action (T, A), reward (T,)."""
    act = pixel_agent.random_actions(run.rng, run.envs.num_envs, run.envs.action_size)
    played = pixel_agent.run_episodes(run.envs, act, desc="render one episode")
    return {"obs": np.stack(played.obs[0]), "action": np.stack(played.action[0]),
            "reward": np.asarray(played.reward[0], np.float32)}


def fill(run: pixel_agent.PixelRun, episode: dict[str, np.ndarray], count: int) -> list[float]:
    """Add episodes up to ``count`` -> the seconds each add took (memory and its file)."""
    seconds = []
    while run.replay.episodes_on_disk < count:
        shift = run.replay.episodes_on_disk % episode["obs"].shape[-1]
        started = time.perf_counter()
        run.replay.add_episode(np.roll(episode["obs"], shift, axis=-1), episode["action"], episode["reward"])
        seconds.append(time.perf_counter() - started)
    return seconds


def timed_save(save, path: Path, rounds: int) -> tuple[float, int]:
    """Median seconds of ``save()`` and the bytes it leaves at ``path`` (a file or a folder of them)."""
    seconds = []
    for _ in range(rounds):
        started = time.perf_counter()
        save()
        seconds.append(time.perf_counter() - started)
    files = [path] if path.is_file() else list(path.iterdir())
    return statistics.median(seconds), sum(f.stat().st_size for f in files if f.suffix == ".pt")


def measure(args: argparse.Namespace) -> dict:
    overrides = ["logger=none", "device=cpu", "env.num_envs=1", "train.train_steps=1", "train.batch_size=2",
                 "train.chunk_length=10"]
    cfg = load_config(pixel_agent.PixelAgentConfig, args.config, overrides)
    cfg.replay.capacity_mb = 1e6  # every episode stays in memory, as the old checkpoint pickled them all
    run = pixel_agent.prepare(cfg, None)
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        logdir = Path(folder)
        (logdir / "old").mkdir()
        run.attach(logdir)
        episode = rendered_episode(run)
        writes: list[float] = []
        for count in sorted(args.episodes):
            writes += fill(run, episode, count)
            if run.train_steps == 0:  # one gradient step: the checkpoint holds Adam's moments, as a run's does
                pixel_agent.update_model(run)
            now_s, now_bytes = timed_save(lambda: runner.save(pixel_agent.PIXEL_SPEC, run, logdir), logdir, args.rounds)
            old_payload = {**run.payload(), "replay": run.replay.state_dict()}  # the replay inside, as before
            old_s, old_bytes = timed_save(
                lambda: save_checkpoint(logdir / "old" / "checkpoint.pt", {"kind": "pixels", "run": old_payload}),
                logdir / "old", args.rounds,
            )
            rows.append({"episodes": count, "steps": len(run.replay), "checkpoint_s": now_s,
                         "checkpoint_bytes": now_bytes, "old_checkpoint_s": old_s, "old_checkpoint_bytes": old_bytes})
            print(f"{count:5d} episodes ({len(run.replay)} steps): checkpoint {now_s * 1000:8.1f} ms, "
                  f"{now_bytes / 2**20:8.2f} MiB written | replay pickled in: {old_s * 1000:8.1f} ms, "
                  f"{old_bytes / 2**20:8.2f} MiB", flush=True)
    run.close()
    write_ms = 1000 * statistics.median(writes)
    print(f"one episode into the replay and its file: {write_ms:.1f} ms (median of {len(writes)})")
    return {"config": str(args.config), "rows": rows, "episode_write_ms": write_ms}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    def run() -> None:
        if min(args.episodes) < 1 or args.rounds < 1:
            raise UserError("--episodes and --rounds must be >= 1")
        print(json.dumps(measure(args)))

    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
