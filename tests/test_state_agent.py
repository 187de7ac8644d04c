"""The state agent end to end: the smoke config from the command line, resume, loading a trained
agent, an MPC step on a known system, and bad input leaving nothing behind."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from worldmodel.agents.state_agent import StatePolicy, load_agent, main, trim_metrics
from worldmodel.envs.state import state_env_spec
from worldmodel.models.dynamics import DynamicsEnsemble, EnsembleConfig
from worldmodel.planning.cem import CEMPlanner, PlannerConfig

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "state_smoke.yaml"
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "WANDB_MODE": "offline"}
KEYS = ["Iteration", "AverageReturn", "StdReturn", "MinimumReturn", "MaximumReturn", "DynamicsMSE"]
KEYS += ["EnvSteps", "TrainTime", "CollectTime"]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    cmd = [sys.executable, str(ROOT / "train" / "agent.py"), "--obs", "state", *args]
    return subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def read_rows(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("state") / "smoke"
    result = run_cli("--config", str(SMOKE), "--logdir", str(logdir), "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir


@pytest.mark.slow
def test_smoke_run_writes_config_metrics_and_loss_curves(smoke_run):
    saved = yaml.safe_load((smoke_run / "config.yaml").read_text())
    assert saved["planner"]["candidates"] == 50 and saved["env"]["id"] == "HalfCheetah-v5"
    rows = read_rows(smoke_run)
    assert [row["Iteration"] for row in rows] == [0, 1]
    for row in rows:
        assert set(KEYS) <= set(row), set(KEYS) - set(row)
        assert all(isinstance(row[key], (int, float)) for key in KEYS)
        assert row["MinimumReturn"] <= row["AverageReturn"] <= row["MaximumReturn"]
        assert row["DynamicsMSE"] > 0
    assert rows[1]["EnvSteps"] > rows[0]["EnvSteps"]
    for i in (0, 1):
        png = smoke_run / f"itr_{i}_loss_curve.png"
        assert png.is_file() and png.read_bytes()[:4] == b"\x89PNG"
    assert (smoke_run / "checkpoint.pt").is_file()
    # The eval video replays one of the iteration's own MPC episodes: its return is one of theirs.
    for row in rows:
        assert row["MinimumReturn"] - 1e-3 <= row["eval_video_return"] <= row["MaximumReturn"] + 1e-3
    assert len(list((smoke_run / "media").glob("eval_episode_*.mp4"))) == 2


def test_replayed_episode_looks_like_the_played_one():
    from worldmodel.envs.state import StateEnvConfig, make_state_envs
    from worldmodel.logging.rollout import record_state_episode, replay_state_episode

    rng = np.random.default_rng(0)
    actions = rng.uniform(-1, 1, size=(12, 1, 6)).astype(np.float32)  # (T, B, A)
    for env_id in ("HalfCheetah-v5", "cheetah-cs285"):
        envs = make_state_envs(StateEnvConfig(id=env_id, num_envs=1, episode_length=12))
        seen, step = [], iter(actions)

        def act(obs):
            seen.append(obs[0].copy())
            return next(step)

        played = record_state_episode(envs, act, seed=3, size=64)
        replayed = replay_state_episode(envs, np.stack(seen), played.rewards, size=64)
        envs.close()
        assert replayed.frames.shape == played.frames.shape == (12, 64, 64, 3)
        difference = np.abs(replayed.frames.astype(int) - played.frames.astype(int)).mean(axis=(1, 2, 3))  # (T,)
        assert difference[0] == 0, env_id  # the reset pose, rendered both ways
        # After a step, MuJoCo's derived positions (what a live render shows) lag qpos by one physics
        # substep; the replay renders qpos itself, so later frames differ by a few grey levels at most.
        assert difference.max() < 8, (env_id, difference)
        # Its return is the rewards it is handed; test_eval_video_films_and_scores_the_first_reported_episode
        # checks the return the training loop reports against env.step.


def test_eval_video_films_and_scores_the_first_reported_episode():
    """log_eval_video on two played episodes: the frames it logs are those of the first episode as filmed
    live while it was played, and the return it reports is that episode's return as env.step gave it."""
    from dataclasses import replace
    from types import SimpleNamespace

    from worldmodel.agents.state_agent import log_eval_video
    from worldmodel.envs.state import StateEnvConfig, make_state_envs
    from worldmodel.envs.state_episodes import Episodes
    from worldmodel.logging.rollout import record_state_episode

    cfg = StateEnvConfig(id="cheetah-cs285", num_envs=1, episode_length=10)
    rng = np.random.default_rng(1)
    played, fields = [], []
    for seed in (3, 4):
        envs = make_state_envs(cfg)
        seen, actions = [], []

        def act(obs):
            seen.append(obs[0].copy())
            actions.append(rng.uniform(-1, 1, size=(1, 6)).astype(np.float32))
            return actions[-1]

        played.append(record_state_episode(envs, act, seed=seed))  # rewards as env.step returned them
        envs.close()
        obs = np.stack(seen)  # (T, S)
        next_obs = np.concatenate([obs[1:], obs[-1:]])  # (T, S); only obs is replayed
        fields.append((obs, np.concatenate(actions), next_obs, played[-1].rewards))
    flat = [np.concatenate(field) for field in zip(*fields)]  # (2 T, ...), episode after episode
    T = len(fields[0][0])
    episodes = Episodes(*flat, terminated=np.zeros(2 * T, dtype=bool), lengths=np.array([T, T]))
    assert abs(played[0].episode_return - played[1].episode_return) > 1  # the two are told apart

    logged = []
    logger = SimpleNamespace(video=lambda name, frames, step, fps: logged.append((name, frames, step, fps)))
    run = SimpleNamespace(cfg=SimpleNamespace(env=replace(cfg, num_envs=3)), iteration=4)
    reported = log_eval_video(run, logger, episodes)
    assert reported == pytest.approx(played[0].episode_return, abs=1e-4)  # float32 rewards in Episodes
    [(name, frames, step, fps)] = logged
    assert (name, step, fps) == ("eval_episode", 4, 100)
    assert frames.shape == played[0].frames.shape == (10, 256, 256, 3)
    for i, live in enumerate(played):
        difference = np.abs(frames.astype(int) - live.frames.astype(int)).mean(axis=(1, 2, 3))  # (T,)
        assert (difference.max() < 8) == (i == 0), (i, difference)


@pytest.mark.slow
def test_resume_continues_without_duplicate_rows(smoke_run, tmp_path, capsys):
    """Continue the finished 2-iteration run for a third iteration, in process (faster than a
    subprocess): a resume, not a redo, keeps the first two rows byte for byte (a redo logs them again
    with another wall_time), collects no random-policy episodes and continues the data's step count.
    (tests/test_resume.py checks a resumed run's values against an uninterrupted run's.)"""
    from worldmodel.checkpoint import load_checkpoint

    before = (smoke_run / "metrics.jsonl").read_text()
    env_steps = load_checkpoint(smoke_run / "checkpoint.pt", kind="state")["run"]["counters"]["env_steps"]
    capsys.readouterr()
    main(overrides=["train.iterations=3"], resume=smoke_run)
    output = capsys.readouterr()
    lines = (output.out + output.err).splitlines()
    warm_up = [line for line in lines if line.startswith("random ")]  # "random 1/1: ..." and "random policy: ..."
    assert not warm_up, f"the resumed run collected its random-policy episodes again: {warm_up}"
    after = (smoke_run / "metrics.jsonl").read_text()
    assert after.startswith(before), "the rows logged before the checkpoint were rewritten (a redo?)"
    rows = read_rows(smoke_run)
    assert [row["Iteration"] for row in rows] == [0, 1, 2]
    assert rows[1]["EnvSteps"] == env_steps < rows[2]["EnvSteps"]


@pytest.mark.slow
def test_load_agent_acts_in_its_env(smoke_run):
    """The loaded model holds the checkpoint's tensors, and the policy plans what the run's own model and
    planner (built from config.yaml and the checkpoint's weights, the generator seeded with the run's seed)
    plan for the same states, in the run's env."""
    from worldmodel.agents.state_agent import StateAgentConfig, build_model, build_planner
    from worldmodel.checkpoint import load_checkpoint
    from worldmodel.config import load_config

    policy = load_agent(smoke_run, device="cpu")
    saved = load_checkpoint(smoke_run / "checkpoint.pt", kind="state")["run"]["model"]
    loaded = policy.model.state_dict()
    assert set(loaded) == set(saved)
    for name, tensor in saved.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0, msg=name)

    cfg = load_config(StateAgentConfig, smoke_run / "config.yaml")
    spec = state_env_spec(cfg.env.id)
    model = build_model(cfg, spec, torch.device("cpu"))
    model.load_state_dict(saved)
    planner = build_planner(cfg, spec, torch.device("cpu"), torch.Generator().manual_seed(cfg.seed))
    reference = StatePolicy(model, planner, reward_fn=spec.reward_fn, termination_fn=None)  # the cheetah never ends
    envs = policy.make_env(num_envs=2)
    try:
        assert envs.envs[0].spec.id == cfg.env.id and envs.num_envs == 2
        obs, _ = envs.reset(seed=0)
        policy.reset()
        reference.reset()
        for _ in range(2):  # the second step plans after a first one (warm start, generator moved on)
            actions = policy.act(obs)
            assert actions.shape == (2, 6) and np.all(np.abs(actions) <= 1)
            np.testing.assert_array_equal(actions, reference.act(obs))
            obs, *_ = envs.step(actions)
    finally:
        envs.close()


def test_trim_metrics_drops_rows_past_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"Iteration": i}) + "\n" for i in range(4)))
    trim_metrics(path, 2)
    assert [row["Iteration"] for row in read_rows(tmp_path)] == [0, 1]


def test_mpc_step_on_a_known_model_runs_forward():
    """An ensemble whose weights make x' = x + 0.005 * a[0] exactly (every other dim stays put): on
    HalfCheetah's reward, (x' - x) / 0.05 - 0.1 |a|^2 = 0.1 a[0] - 0.1 |a|^2 per step, the best action is
    (0.5, 0, 0, 0, 0, 0). The first planned action must be that one, for every env: a planner returning
    the box centre, or CEM refitting to random elites, is off by 0.5 in the first dim."""
    spec = state_env_spec("HalfCheetah-v5")
    model = DynamicsEnsemble(
        EnsembleConfig(ensemble_size=2, hidden_size=8), obs_size=18, action_size=6, model_input_dims=spec.model_input_dims
    )
    a0 = len(spec.model_input_dims)  # the model input is [observed dims, action]: a[0] comes after the 17 seen dims
    with torch.no_grad():
        first, second, last = model.mlp.layers  # weights (E, in, out), biases (E, 1, out)
        for layer in model.mlp.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[:, a0, 0], first.weight[:, a0, 1] = 1.0, -1.0  # hidden units relu(a0), relu(-a0)
        second.weight[:, 0, 0], second.weight[:, 1, 1] = 1.0, 1.0  # passed on unchanged
        last.weight[:, 0, 0], last.weight[:, 1, 0] = 1.0, -1.0  # normalised delta of x: relu(a0) - relu(-a0) = a0
        model.target_norm.std[0] = 0.005  # x' - x = 0.005 a0; every other delta is 0 (zero output, zero mean)
    obs = torch.randn(3, 18)  # (B, S): the dynamics ignore the state
    actions = torch.rand(3, 7, 2, 6) * 2 - 1  # (B, N, L, A)
    expected = (0.1 * actions[..., 0] - 0.1 * actions.square().sum(-1)).sum(-1)  # (B, N): the known returns
    torch.testing.assert_close(model.imagine_returns(obs, actions, spec.reward_fn), expected)

    cfg = PlannerConfig(horizon=2, candidates=500, iterations=6, elites=50)
    planner = CEMPlanner(cfg, -torch.ones(6), torch.ones(6), generator=torch.Generator().manual_seed(0))
    policy = StatePolicy(model, planner, reward_fn=spec.reward_fn, termination_fn=None)
    actions = policy.act(obs.numpy())  # (B, A)
    assert actions.shape == (3, 6)
    best = np.array([0.5, 0, 0, 0, 0, 0])
    np.testing.assert_allclose(actions, np.broadcast_to(best, (3, 6)), atol=0.1)


def test_collect_mpc_starts_every_batch_from_a_fresh_plan():
    """planner.warm_start: within an episode each plan starts from the previous one (its first CEM
    iteration samples narrowly around it), but the first step of every batch of episodes that
    collect_mpc plays (5 episodes in 2 envs: batches of 2, 2 and 1) starts from scratch (a uniform first
    iteration): no plan of another episode, or of another batch size, seeds it."""
    from worldmodel.agents.state_agent import StateAgentConfig, collect_mpc, prepare
    from worldmodel.config import load_config

    overrides = ["env.episode_length=3", "planner.warm_start=true", "planner.init=uniform", "planner.init_std=0.05"]
    run = prepare(load_config(StateAgentConfig, SMOKE, overrides), None)
    try:
        first_spreads = []  # per planner call: the spread of its first iteration's samples
        plan = run.planner.plan

        def spying_plan(objective, batch_size):
            samples = []

            def recording(actions):  # (B, N, L, A) -> (B, N)
                samples.append(actions)
                return objective(actions)

            result = plan(recording, batch_size)
            first_spreads.append((batch_size, round(float(samples[0].std(dim=1).mean()), 2)))
            return result

        run.planner.plan = spying_plan
        episodes = collect_mpc(run, 5, "test")
    finally:
        run.close()
    assert episodes.actions.shape == (15, 6) and episodes.lengths.tolist() == [3] * 5
    # Uniform on [-1, 1]: std 1/sqrt(3) = 0.58; a warm start: 0.05 around the shifted plan.
    fresh = [(size, spread > 0.5) for size, spread in first_spreads]
    assert fresh == [(2, True), (2, False), (2, False)] * 2 + [(1, True), (1, False), (1, False)], first_spreads


# ---- bad input ------------------------------------------------------------------------------

BAD_INPUTS = {
    "unknown env id": (["--env", "Hopper-v9"], "unknown state environment 'Hopper-v9'"),
    "discrete actions": (["--env", "CartPole-v1"], "CartPole-v1 has discrete actions"),
    "known reward it lacks": (["--env", "dmc:walker-walk", "model.reward=known"], "model.reward=known: the project has no reward"),
    "unknown key": (["planner.horizn=3"], "unknown config key 'planner.horizn'"),
    "elites > candidates": (["planner.candidates=10", "planner.elites=20"], "planner.elites must be between 1 and"),
    "horizon < 1": (["planner.horizon=0"], "planner.horizon must be >= 1"),
    "missing config": (["--config", "configs/no_such_file.yaml"], "config file not found"),
}


def load_cli():
    """train/agent.py as a module, so the bad-input cases run in process (a subprocess each costs seconds)."""
    spec = importlib.util.spec_from_file_location("train_agent_cli", ROOT / "train" / "agent.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_is_one_line_and_leaves_the_logdir_alone(case, tmp_path, capsys):
    args, expected = BAD_INPUTS[case]
    cli = load_cli()
    logdir = tmp_path / "existing"
    logdir.mkdir()
    (logdir / "notes.txt").write_text("keep me")
    fresh = tmp_path / "fresh"
    for target in (logdir, fresh):
        code = cli.main(["--obs", "state", "--logdir", str(target), "logger=none", *args])
        captured = capsys.readouterr()
        assert code == 2
        lines = [line for line in captured.err.splitlines() if line.strip()]
        assert len(lines) == 1, captured.err
        assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
    assert sorted(p.name for p in logdir.iterdir()) == ["notes.txt"]
    assert (logdir / "notes.txt").read_text() == "keep me"
    assert not fresh.exists()


def test_bad_input_from_a_real_command_line(tmp_path):
    """One case through a real process: exit code, a single stderr line, no traceback."""
    logdir = tmp_path / "existing"
    logdir.mkdir()
    result = run_cli("--logdir", str(logdir), "--config", str(SMOKE), "planner.elites=100", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip() == "error: planner.elites must be between 1 and planner.candidates (50), got 100"
    assert "Traceback" not in result.stdout and list(logdir.iterdir()) == []


def test_existing_run_folder_is_refused(tmp_path, capsys):
    logdir = tmp_path / "run"
    logdir.mkdir()
    (logdir / "config.yaml").write_text("seed: 0\n")
    code = load_cli().main(["--obs", "state", "--config", str(SMOKE), "--logdir", str(logdir), "logger=none"])
    assert code == 2 and "already holds files" in capsys.readouterr().err
    assert sorted(p.name for p in logdir.iterdir()) == ["config.yaml"]
