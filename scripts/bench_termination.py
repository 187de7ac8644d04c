#!/usr/bin/env python
"""What ending imagined rollouts at termination costs the planner: one CEM call on Hopper-v5's ensemble with its
known termination against the same call with rollouts that never end, timed in alternating rounds.

  python scripts/bench_termination.py                       # configs/state_mujoco.yaml's model and planner
  python scripts/bench_termination.py --env Walker2d-v5 --rounds 20 --json /tmp/termination.json

Prints the median ms per planner call of each, and their ratio (issue 19's bound: at most 1.10). The model is
untrained (the cost does not depend on the weights); the states are reset states of the env.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from worldmodel.agents.state_agent import StateAgentConfig, build_model, build_planner  # noqa: E402
from worldmodel.config import load_config  # noqa: E402
from worldmodel.envs.state import make_state_envs, state_env_spec  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def planner_call_ms(plan, rounds: int, calls: int) -> list[float]:
    times = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(calls):
            plan()
        times.append(1000 * (time.perf_counter() - started) / calls)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--env", default="Hopper-v5", help="a body with a known termination (default Hopper-v5)")
    parser.add_argument("--config", default=str(ROOT / "configs" / "state_mujoco.yaml"), help="model and planner sizes")
    parser.add_argument("--rounds", type=int, default=10, help="alternating rounds of each (default 10)")
    parser.add_argument("--calls", type=int, default=5, help="planner calls per round (default 5)")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.calls < 1:
        parser.error("--rounds and --calls must be >= 1")

    cfg = load_config(StateAgentConfig, args.config, [f"env.id={args.env}", "device=cpu"])
    spec = state_env_spec(cfg.env.id, action_repeat=cfg.env.action_repeat)
    if not spec.terminates or spec.termination_fn is None:
        parser.error(f"{args.env} has no known termination to time")
    device = torch.device("cpu")
    model = build_model(cfg, spec, device)
    planner = build_planner(cfg, spec, device, torch.Generator().manual_seed(0))
    envs = make_state_envs(cfg.env)
    obs = torch.as_tensor(envs.reset(seed=0)[0], dtype=torch.float32)  # (B, S)
    envs.close()

    def call(termination_fn):
        def plan():
            planner.reset()
            objective = lambda actions: model.imagine_returns(obs, actions, spec.reward_fn, termination_fn)  # noqa: E731
            return planner.plan(objective, batch_size=obs.shape[0])

        return plan

    variants = {"never_ends_ms": call(None), "terminates_ms": call(spec.termination_fn)}
    for plan in variants.values():  # warm-up
        plan()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, plan in variants.items():
            samples[name] += planner_call_ms(plan, 1, args.calls)
    result = {name: statistics.median(values) for name, values in samples.items()}
    result["ratio"] = result["terminates_ms"] / result["never_ends_ms"]
    result.update(env=args.env, num_envs=obs.shape[0], threads=torch.get_num_threads(), rounds=args.rounds)
    print(json.dumps(result, indent=2))
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
