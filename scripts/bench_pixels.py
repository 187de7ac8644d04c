"""Time the pixel agent's parts on one device, in one run: latent planning, a training step, the
environments, and a short real run end to end.

    python scripts/bench_pixels.py --device cpu|cuda [--config configs/pixels_planet.yaml] [--quick]
    python scripts/bench_pixels.py --device cpu --config configs/pixels_default.yaml --env dmc:walker-walk
    python scripts/bench_pixels.py --device cuda planner.candidates=500     # key.sub=value overrides the config

Figures, at the config's sizes (default: PlaNet's cartpole-swingup config):
  plan_ms_1env, plan_ms_8env  one latent CEM planner call (WorldModel.imagine_returns) for 1 env, and for 8 envs
                              in one batched call; medians over the rounds. On CUDA also plan_ms_*_graph: the same
                              call captured as one CUDA graph (bench_planner's helper), replayed with one launch.
  plan_gflops                 matmul GFLOP/s of the 8-env call (transition, GRU, prior, reward head)
  peak_gflops                 square fp32 matmuls on the same device and threads (bench_planner's peak; on CUDA
                              with TF32, as the agent's matmuls run there)
  train_step_ms               one WorldModel.train_step on random frames, batch x chunk of the config (with
                              model.train_graph on CUDA: the replayed graph, timed after it is recorded)
  env_fps_1, env_fps_8        frames (agent steps, action repeat and render included) per second: 1 env in this
                              process, 8 envs in worker processes
  e2e_env_steps_per_s         a short real run of the pixel agent: seed episodes, then one update_model + collect
                              timed; env steps (action repeat included, the runs' ``fps``) per second. Episodes are
                              --e2e-steps long and the gradient steps scaled with them, so training and acting
                              keep the config's proportion.

Rounds interleave the contenders, after one warm-up call each, so all figures see the same load (the
machine may be shared). Output: a human-readable summary, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

os.environ.setdefault("MUJOCO_GL", "egl")  # headless rendering unless the user chose a backend; before mujoco loads
sys.path.insert(0, str(Path(__file__).resolve().parent))  # bench_planner's timing helpers
import bench_planner  # noqa: E402  (puts the repository root on sys.path too)

from worldmodel.agents import pixel_agent  # noqa: E402
from worldmodel.devices import resolve_device  # noqa: E402
from worldmodel.cli import parse_with_overrides  # noqa: E402
from worldmodel.config import load_config  # noqa: E402
from worldmodel.cpu import tune_cpu  # noqa: E402
from worldmodel.envs.pixel_factory import make_pixel_envs  # noqa: E402
from worldmodel.envs.pixels import PixelEnvs  # noqa: E402
from worldmodel.errors import UserError  # noqa: E402
from worldmodel.models.graphed import WARMUP_STEPS  # noqa: E402
from worldmodel.models.world_model import WorldModel  # noqa: E402
from worldmodel.planning import Planner, make_planner, sequences_per_call  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "pixels_planet.yaml"
MANY_ENVS = 8
KEYS = ("plan_ms_1env", "plan_ms_8env", "plan_gflops", "peak_gflops", "train_step_ms", "env_fps_1", "env_fps_8",
        "e2e_env_steps_per_s", "device")


# ------------------------------------------------------------------------------ model figures


def planner_call(model: WorldModel, planner: Planner, num_envs: int):
    """One planner call for ``num_envs`` envs from a random belief, as ``PixelPolicy.act`` makes it."""
    state = model.initial_state(num_envs).map(torch.randn_like)  # (B): h (B, D), z (B, S)

    def objective(actions: Tensor) -> Tensor:
        return model.imagine_returns(state, actions, sample=planner.cfg.sample)  # (B, N, L, A) -> (B, N)

    return lambda: planner.plan(objective, batch_size=num_envs)  # -> plan (B, L, A)


def random_batch(cfg, action_size: int, obs_shape: tuple[int, ...], device: torch.device) -> dict[str, Tensor]:
    """A replay-like chunk batch: obs uint8 (B, T, C, H, W), action (B, T, A), reward (B, T), is_first (B, T)."""
    B, T = cfg.train.batch_size, cfg.train.chunk_length
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    batch = {
        "obs": torch.randint(0, 256, (B, T, *obs_shape), dtype=torch.uint8),
        "action": torch.rand(B, T, action_size) * 2 - 1,
        "reward": torch.rand(B, T),
        "is_first": is_first,
    }
    return {key: value.to(device) for key, value in batch.items()}


def bench_model(cfg, action_size: int, obs_shape: tuple[int, ...], device: torch.device, repeats: int) -> dict:
    """Planner calls for 1 and 8 envs (and their CUDA graphs), a training step and the matmul peak."""
    torch.manual_seed(0)
    planning_model = WorldModel(cfg.model, action_size, obs_shape).to(device).eval()
    training_model = WorldModel(cfg.model, action_size, obs_shape).to(device)
    box = torch.ones(action_size, device=device)
    planner = make_planner(cfg.planner, low=-box, high=box)  # the default generator: a CUDA graph can replay it
    batch = random_batch(cfg, action_size, obs_shape, device)
    peak_run, peak_flops = bench_planner.peak_matmul(device)
    contenders = {
        "plan_1": planner_call(planning_model, planner, 1),
        "plan_8": planner_call(planning_model, planner, MANY_ENVS),
        "train": lambda: training_model.train_step(batch),
        "peak": peak_run,
    }
    if device.type == "cuda":
        for name in ("plan_1", "plan_8"):
            graphed = bench_planner.cuda_graphed(contenders[name])
            if graphed is not None:
                contenders[f"{name}_graph"] = graphed
    if training_model.cfg.train_graph and device.type == "cuda":
        for _ in range(WARMUP_STEPS + 1):  # eager warm-up steps, then the one that records the graph
            training_model.train_step(batch)
    timings = bench_planner.run_rounds(contenders, repeats, device)
    c = cfg.planner
    flops_per_env = bench_planner.latent_flops_per_step(planning_model, c.sample) * sequences_per_call(c) * c.horizon
    ms = {name: 1e3 * timings.median(name) for name in timings.rounds}
    figures = {
        "plan_ms_1env": ms["plan_1"],
        "plan_ms_8env": ms["plan_8"],
        "plan_gflops": flops_per_env * MANY_ENVS / ms["plan_8"] / 1e6,
        "plan_gflops_1env": flops_per_env / ms["plan_1"] / 1e6,
        "peak_gflops": peak_flops / ms["peak"] / 1e6,
        "train_step_ms": ms["train"],
        "plan_ms_rounds_8env": [round(1e3 * s, 1) for s in timings.rounds["plan_8"]],
    }
    for name, key in (("plan_1_graph", "plan_ms_1env_graph"), ("plan_8_graph", "plan_ms_8env_graph")):
        if name in ms:
            figures[key] = ms[name]
    return figures


# ------------------------------------------------------------------------------ env figures


def env_fps(envs: PixelEnvs, steps: int, rng: np.random.Generator) -> float:
    """Frames per second over ``steps`` batched steps of random actions (the first reset not timed)."""
    envs.reset()
    started = time.perf_counter()
    for _ in range(steps):
        _, _, done = envs.step(rng.uniform(-1, 1, (envs.num_envs, envs.action_size)).astype(np.float32))
        if done.all():
            envs.reset()
    return steps * envs.num_envs / (time.perf_counter() - started)


def bench_envs(cfg, steps: int) -> dict:
    rng = np.random.default_rng(0)
    figures = {}
    for num_envs, key in ((1, "env_fps_1"), (MANY_ENVS, f"env_fps_{MANY_ENVS}")):
        envs = make_pixel_envs(dataclasses.replace(cfg.env, num_envs=num_envs), seed=cfg.seed)
        try:
            figures[key] = env_fps(envs, steps, rng)
        finally:
            envs.close()
    return figures


def bench_e2e(cfg, episode_steps: int, full_steps: int, overrides: list[str], config_path: Path) -> dict:
    """A short real run (no run folder): seed episodes, then one ``update_model`` + ``collect`` timed.
    ``full_steps``: the config's episode length in agent steps."""
    num_envs, chunk = cfg.env.num_envs, cfg.train.chunk_length
    train_steps = max(1, round(cfg.train.train_steps * episode_steps / full_steps))  # the config's proportion
    seed_episodes = num_envs * math.ceil(chunk / (episode_steps + 1))  # enough steps for one chunk
    short = [
        f"env.max_episode_steps={episode_steps}",
        f"train.train_steps={train_steps}",
        f"train.seed_episodes={seed_episodes}",
        f"train.episodes={seed_episodes + num_envs}",
        "train.heldout_episodes=0",
        "logger=none",
    ]
    e2e_cfg = load_config(pixel_agent.PixelAgentConfig, config_path, overrides + short)
    run = pixel_agent.prepare(e2e_cfg, None)
    try:
        pixel_agent.warm_up(run)
        steps_before, started = run.env_steps, time.perf_counter()
        pixel_agent.update_model(run)
        pixel_agent.collect(run)
        bench_planner.synchronize(run.device)
        seconds = time.perf_counter() - started
    finally:
        run.close()
    return {
        "e2e_env_steps_per_s": (run.env_steps - steps_before) / seconds,
        "e2e_seconds": seconds,
        "e2e_train_steps": train_steps,
        "e2e_agent_steps": episode_steps * num_envs,
        "e2e_num_envs": num_envs,
    }


# ----------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--config", type=Path, default=DEFAULT_CONFIG, help="pixel config (default: PlaNet cartpole)")
    parser.add_argument(
        "--env", help="task, e.g. dmc:walker-walk, at its own PlaNet action repeat as train/agent.py --env takes it "
        "(default: the config's)",
    )
    parser.add_argument("--quick", action="store_true", help="tiny repeats, a few env steps: checks it runs")
    parser.add_argument("--repeats", type=int, help="timed rounds of the model figures (default: 3, quick: 1)")
    parser.add_argument("--env-steps", type=int, help="batched steps per env figure (default: 50, quick: 3)")
    parser.add_argument("--e2e-steps", type=int, help="episode length of the short run (default: 10, quick: 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, as train/agent.py")
    return parser


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = build_parser()
    args = parse_with_overrides(parser, argv)
    quick = {"repeats": 1, "env_steps": 3, "e2e_steps": 2}
    full = {"repeats": 3, "env_steps": 50, "e2e_steps": 10}
    for name, value in (quick if args.quick else full).items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if min(args.repeats, args.env_steps, args.e2e_steps, args.threads or 1) < 1:
        parser.error("--repeats, --env-steps, --e2e-steps and --threads must be >= 1")
    return args


def describe(r: dict, threads: int) -> str:
    graph = ""
    if "plan_ms_1env_graph" in r or "plan_ms_8env_graph" in r:
        graph = (f"\n  as one CUDA graph: {r.get('plan_ms_1env_graph', float('nan')):.1f} ms (1 env), "
                 f"{r.get('plan_ms_8env_graph', float('nan')):.1f} ms ({MANY_ENVS} envs)")
    return (
        f"device {r['device']}, {threads} threads, config {r['config']}\n"
        f"fp32 matmul peak: {r['peak_gflops']:.1f} GFLOP/s{' (TF32 tensor cores)' if r['device'] == 'cuda' else ''}\n"
        f"latent CEM per planner call: {r['plan_ms_1env']:.1f} ms (1 env), {r['plan_ms_8env']:.1f} ms "
        f"({MANY_ENVS} envs, {r['plan_gflops']:.1f} GFLOP/s = {100 * r['plan_gflops'] / r['peak_gflops']:.0f}% of peak)"
        f"{graph}\n"
        f"training step: {r['train_step_ms']:.1f} ms\n"
        f"env + render: {r['env_fps_1']:.1f} frames/s (1 env), {r[f'env_fps_{MANY_ENVS}']:.1f} frames/s "
        f"({MANY_ENVS} envs in workers)\n"
        f"end to end: {r['e2e_env_steps_per_s']:.1f} env steps/s ({r['e2e_agent_steps']} agent steps, "
        f"{r['e2e_train_steps']} gradient steps, {r['e2e_seconds']:.1f} s)"
    )


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    tune_cpu()  # as the run loop does (worldmodel/cpu.py)
    try:
        device = resolve_device(args.device)
        overrides = ([f"env.id={args.env}"] if args.env else []) + list(args.overrides) + [f"device={device.type}"]
        cfg = load_config(pixel_agent.PixelAgentConfig, args.config, overrides)
        if args.threads is not None:
            torch.set_num_threads(args.threads)
        probe = make_pixel_envs(dataclasses.replace(cfg.env, num_envs=1), seed=cfg.seed)
        action_size, obs_shape, full_steps = probe.action_size, probe.obs_shape, probe.max_episode_steps
        probe.close()
        result = {"device": str(device), "config": str(args.config), "env": cfg.env.id, "threads": torch.get_num_threads()}
        result.update(bench_model(cfg, action_size, obs_shape, device, args.repeats))
        result.update(bench_envs(cfg, args.env_steps))
        result.update(bench_e2e(cfg, args.e2e_steps, full_steps, overrides, args.config))
    except UserError as err:
        sys.exit(f"error: {err}")
    print(describe(result, torch.get_num_threads()), flush=True)
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    main()
