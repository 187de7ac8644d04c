"""The state agent beyond the cheetah, one tiny run per body family: a gymnasium body that terminates (Hopper,
known reward and termination), a pendulum, and dm_control from states (learned reward, action repeat)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from worldmodel.agents.state_agent import StateAgentConfig, load_agent, main, prepare, warm_up
from worldmodel.checkpoint import load_checkpoint
from worldmodel.config import load_config

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "state_smoke.yaml"
TINY = [
    "logger=none",
    "model.hidden_size=16",
    "train.train_steps=10",
    "planner.candidates=16",
    "planner.elites=4",
    "planner.horizon=3",
    "train.video_every=0",
    "train.iterations=1",
]


def rows(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]


def test_hopper_terminates_and_counts_its_steps(tmp_path: Path) -> None:
    logdir = tmp_path / "hopper"
    overrides = [*TINY, "env.episode_length=null", "train.random_steps=150", "train.mpc_steps=60"]
    main(SMOKE, ["env.id=Hopper-v5", *overrides], logdir)
    config = yaml.safe_load((logdir / "config.yaml").read_text())
    assert (config["model"]["reward"], config["model"]["termination"]) == ("known", "known")

    buffer = load_checkpoint(logdir / "checkpoint.pt", kind="state")["run"]["buffer"]
    terminated = buffer["terminated"].numpy()
    [row] = rows(logdir)
    assert row["env_steps"] == len(terminated) >= 150 + 60  # every transition counted once, action repeat 1
    # A hopper under random or barely trained actions falls within tens of steps: episodes end by termination.
    assert terminated.sum() >= 4 and row["EpisodeLength"] < 1000
    # No transition spans a reset: after a terminal transition the next one starts from a fresh state.
    obs, next_obs = buffer["obs"].numpy(), buffer["next_obs"].numpy()
    inside = ~terminated[:-1].astype(bool)
    continues = np.isclose(obs[1:], next_obs[:-1]).all(-1)
    assert continues[inside].mean() > 0.9 and not continues[~inside].any()


def test_inverted_pendulum_runs_and_plans_with_its_known_functions(tmp_path: Path) -> None:
    logdir = tmp_path / "pendulum"
    main(SMOKE, ["env.id=InvertedPendulum-v5", *TINY, "env.episode_length=null", "train.mpc_steps=30"], logdir)
    [row] = rows(logdir)
    # v5: reward 1 per step that leaves the pole up, 0 on the step it falls (every episode here ends so).
    assert row["AverageReturn"] == pytest.approx(row["EpisodeLength"] - 1)
    policy = load_agent(logdir, device="cpu")
    assert policy.reward_fn is not None and policy.termination_fn is not None


def test_dm_control_from_states_learns_its_reward(tmp_path: Path) -> None:
    logdir = tmp_path / "dmc"
    overrides = [*TINY, "env.action_repeat=4", "env.episode_length=null", "train.random_episodes=2"]
    main(SMOKE, ["env.id=dmc:cartpole-swingup", *overrides], logdir)
    config = yaml.safe_load((logdir / "config.yaml").read_text())
    assert (config["model"]["reward"], config["model"]["termination"]) == ("learned", "known")
    [row] = rows(logdir)
    # 250 agent steps per episode at action repeat 4: 2 random + 2 MPC + 1 fresh random episodes.
    assert row["env_steps"] == 5 * 250 * 4 and row["EpisodeLength"] == 250
    assert "model/reward_loss" not in row or np.isfinite(row["model/reward_loss"])
    policy = load_agent(logdir, device="cpu")
    assert policy.reward_fn is None and policy.termination_fn is None and policy.model.learn_reward
    envs = policy.make_env(num_envs=1)
    try:
        obs, _ = envs.reset(seed=0)
        assert np.isfinite(policy.act(obs)).all()
    finally:
        envs.close()


def test_the_learned_reward_trains_on_the_collected_rewards() -> None:
    cfg = load_config(StateAgentConfig, SMOKE, ["env.id=dmc:cartpole-swingup", *TINY, "env.episode_length=50"])
    run = prepare(cfg, None)
    try:
        warm_up(run)
        data = run.buffer.all()
        from worldmodel.agents.state_agent import train_dynamics

        run.cfg.train.train_steps = 300
        train_dynamics(run)
        E = run.model.ensemble_size
        _, reward, _ = run.model.predict_heads(data["obs"].expand(E, -1, -1), data["actions"].expand(E, -1, -1))
        error = (reward.mean(0) - data["rewards"]).square().mean()
        assert error < 0.5 * data["rewards"].var(), (float(error), float(data["rewards"].var()))
    finally:
        run.close()
    assert torch.is_tensor(data["rewards"])


def test_bench_termination_times_both_variants(tmp_path: Path) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_termination", ROOT / "scripts" / "bench_termination.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    out = tmp_path / "termination.json"
    assert bench.main(["--config", str(SMOKE), "--rounds", "1", "--calls", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["env"] == "Hopper-v5" and result["never_ends_ms"] > 0 and result["terminates_ms"] > 0
    assert result["ratio"] == pytest.approx(result["terminates_ms"] / result["never_ends_ms"])
    with pytest.raises(SystemExit):
        bench.main(["--config", str(SMOKE), "--env", "HalfCheetah-v5"])  # nothing to time: it never terminates
