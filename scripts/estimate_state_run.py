#!/usr/bin/env python
"""How long a state-agent config takes on this machine, before running it: one planner call and one
training step timed at the config's sizes, multiplied out by the calls and steps a whole run makes.

    python scripts/estimate_state_run.py --config configs/state_halfcheetah_cem.yaml
    python scripts/estimate_state_run.py --config configs/state_halfcheetah_rs.yaml --device cuda

A run plans once per env step for all its envs at once: each iteration plays ceil(episodes / num_envs)
batches of episode_length steps (collected and evaluation episodes together), so the planner is called
iterations x batches x episode_length times; training takes iterations x train.train_steps gradient steps.
The model is untrained (its speed does not depend on its weights); env stepping and rendering are left out,
so the estimate is a lower bound. Output: the figures, then ONE JSON object on the last line.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.cli import parse_with_overrides  # noqa: E402
from worldmodel.errors import UserError, exit_code  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/estimate_state_run.py", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--config", type=Path, help="state-agent config (default: the CPU default)")
    parser.add_argument("--device", choices=["auto", "cpu", "cuda"], default="cpu", help="where to time (default: cpu)")
    parser.add_argument("--calls", type=int, default=3, help="planner calls timed, after one warm-up (default: 3)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value", help="config overrides, as train/agent.py")
    return parser


def planner_calls(cfg, episode_length: int) -> int:
    """Planner calls in a whole run: one per env step of every batch of MPC episodes, every episode to its time
    limit (episodes that terminate early make it an upper bound): the mpc_episodes and eval_episodes in batches of
    num_envs, then batches of num_envs more until train.mpc_steps."""
    train, B, T = cfg.train, cfg.env.num_envs, episode_length
    calls = 0
    for iteration in range(train.iterations):
        last = iteration + 1 == train.iterations
        collected = train.mpc_episodes if (train.collect_after_last or not last) else 0
        batches = math.ceil((collected + train.eval_episodes) / B)
        steps = collected * T
        while collected and steps < train.mpc_steps:
            batches, steps = batches + 1, steps + B * T
        calls += batches * T
    return calls


def median_seconds(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def estimate(args: argparse.Namespace) -> dict:
    import torch

    from worldmodel.agents.state_agent import StateAgentConfig, build_model, build_planner, build_policy
    from worldmodel.config import load_config
    from worldmodel.cpu import tune_cpu
    from worldmodel.data.transitions import TransitionBuffer
    from worldmodel.devices import resolve_device
    from worldmodel.envs.state import state_env_spec

    tune_cpu()
    cfg = load_config(StateAgentConfig, args.config, [*args.overrides, f"device={args.device}"])
    device, spec = resolve_device(cfg.device), state_env_spec(cfg.env.id, action_repeat=cfg.env.action_repeat)
    generator = torch.Generator(device=device).manual_seed(0)
    model, planner = build_model(cfg, spec, device), build_planner(cfg, spec, device, generator)
    obs = 0.1 * torch.randn(cfg.env.num_envs, spec.obs_size, device=device)  # (B, S)
    policy = build_policy(cfg, spec, model, planner)  # the known or learned reward and termination the run uses
    reward_fn, termination_fn = policy.reward_fn, policy.termination_fn

    def plan() -> None:
        planner.plan(lambda actions: model.imagine_returns(obs, actions, reward_fn, termination_fn), cfg.env.num_envs)
        if device.type == "cuda":
            torch.cuda.synchronize()

    buffer = TransitionBuffer(spec.obs_size, spec.action_size, device=device)
    n = 10 * cfg.train.batch_size
    buffer.add(torch.randn(n, spec.obs_size), torch.rand(n, spec.action_size), torch.randn(n, spec.obs_size), torch.zeros(n))
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.model.learning_rate)

    def train_step() -> None:
        batch = buffer.sample(cfg.model.ensemble_size, cfg.train.batch_size, generator)
        total, _ = model.loss(batch["obs"], batch["actions"], batch["next_obs"])
        optimizer.zero_grad(set_to_none=True)
        total.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    plan_s, step_s = median_seconds(plan, args.calls), median_seconds(train_step, 20)
    calls = planner_calls(cfg, cfg.env.episode_length or spec.max_episode_steps)
    steps = cfg.train.iterations * cfg.train.train_steps
    return {
        "config": str(args.config), "device": str(device), "threads": torch.get_num_threads(),
        "num_envs": cfg.env.num_envs, "plan_s_per_call": plan_s, "planner_calls": calls,
        "train_step_ms": 1e3 * step_s, "train_steps": steps,
        "estimate_h": (calls * plan_s + steps * step_s) / 3600,
    }


def main(argv: list[str] | None = None) -> int:
    args = parse_with_overrides(build_parser(), argv)
    os.environ.setdefault("MUJOCO_GL", "egl")

    def run() -> None:
        if args.calls < 1:
            raise UserError("--calls must be >= 1")
        result = estimate(args)
        print(f"{result['config']}: one planner call for {result['num_envs']} envs {result['plan_s_per_call']:.2f} s "
              f"x {result['planner_calls']} calls; one training step {result['train_step_ms']:.1f} ms x "
              f"{result['train_steps']} steps -> at least {result['estimate_h']:.1f} h a run on {result['device']} "
              f"({result['threads']} threads; env steps not counted)")
        print(json.dumps(result))

    return exit_code(run)


if __name__ == "__main__":
    sys.exit(main())
