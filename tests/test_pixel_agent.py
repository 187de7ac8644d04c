"""The pixel agent: the smoke run end to end from the command line, resume after SIGKILL, loading a
trained agent, and bad input leaving nothing behind (its acting and planning: test_pixel_planning.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml

from worldmodel.agents.pixel_agent import PixelPolicy, load_agent, trim_metrics
from worldmodel.models.world_model import WorldModel
from worldmodel.planning.cem import CEMPlanner

from resume_checks import HANG_GUARD_S, kill_mid_run, metric_lines, rows_of, without_timing  # tests/resume_checks.py

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "pixels_smoke.yaml"
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "WANDB_MODE": "offline"}


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train" / "agent.py"), "--obs", "pixels", *args]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(train_cmd(*args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def read_rows(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]


# ---- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("pixels") / "smoke"
    started = time.perf_counter()
    result = run_cli("--config", str(SMOKE), "--logdir", str(logdir), "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"pixel smoke run: {time.perf_counter() - started:.1f}s")
    return logdir


@pytest.mark.slow
def test_smoke_run_writes_config_metrics_media_and_learns(smoke_run):
    config = yaml.safe_load((smoke_run / "config.yaml").read_text())
    assert config["env"]["id"] == "dmc:cartpole-swingup" and config["logger"] == "none"
    rows = read_rows(smoke_run)
    assert [row["episode"] for row in rows] == [2, 3]
    for row in rows:
        for key in ("env_steps", "episode", "recon_loss", "reward_loss", "kl_loss", "wall_time", "fps"):
            assert key in row and row[key] is not None, (key, row)
        assert "heldout_recon_loss" in row
        phases = {key: row[key] for key in row if key.startswith("time_") and key.endswith("_s")}
        assert {"time_train_s", "time_collect_s", "time_collect_plan_s", "time_eval_s", "time_media_s"} <= set(phases)
        assert all(seconds >= 0 for seconds in phases.values()), phases
        assert phases["time_collect_plan_s"] <= phases["time_collect_s"]
    # The phases cover an iteration: their sum (less planning, a part of collecting) is its wall time.
    covered = sum(v for k, v in rows[1].items() if k.startswith("time_") and k != "time_collect_plan_s")
    assert covered == pytest.approx(rows[1]["wall_time"] - rows[0]["wall_time"], rel=0.05)
    assert any("AverageReturn" in row for row in rows)
    assert rows[1]["env_steps"] > rows[0]["env_steps"] > 0
    assert rows[1]["recon_loss"] < 0.8 * rows[0]["recon_loss"]
    assert rows[1]["heldout_recon_loss"] < rows[0]["heldout_recon_loss"]
    media = {path.name.rsplit("_", 1)[0]: path for path in (smoke_run / "media").iterdir()}
    assert {"recon", "openl", "eval_episode"} <= set(media)
    grid = iio.imread(media["recon"])
    assert grid.dtype == np.uint8 and grid.shape[0] == 2 * grid.shape[1] // 8  # truth over reconstruction, 8 frames
    openl = iio.imread(media["openl"])  # (T, 3H, B W, C): truth / model / error rows
    assert openl.shape[0] == 10 and openl.shape[1] == 3 * 64 * 2
    assert (smoke_run / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_load_agent_acts_and_reconstructs(smoke_run):
    """The loaded world model holds the checkpoint's tensors, and the policy acts and reconstructs as the
    run's own model does (built from config.yaml and the checkpoint's weights, its planner and generator
    seeded with the run's seed) on the same frames of the run's env."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig
    from worldmodel.checkpoint import load_checkpoint
    from worldmodel.config import load_config

    policy = load_agent(smoke_run, device="cpu")
    saved = load_checkpoint(smoke_run / "checkpoint.pt", kind="pixels")["run"]["world_model"]["model"]
    loaded = policy.world_model.state_dict()
    assert set(loaded) == set(saved)
    for name, tensor in saved.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0, msg=name)

    cfg = load_config(PixelAgentConfig, smoke_run / "config.yaml")
    model = WorldModel(cfg.model, action_size=1, image_shape=(3, cfg.env.image_size, cfg.env.image_size))
    model.load_state_dict(saved)
    generator = torch.Generator().manual_seed(cfg.seed)
    planner = CEMPlanner(cfg.planner, -torch.ones(1), torch.ones(1), generator=generator)
    reference = PixelPolicy(model, planner, generator=generator)
    envs = policy.make_envs(num_envs=2, seed=3)
    try:
        obs = envs.reset()
        assert obs.shape == (2, 3, cfg.env.image_size, cfg.env.image_size) and obs.dtype == np.uint8
        policy.reset()
        reference.reset()
        for _ in range(2):  # the second step filters the first action and plans from a moved-on generator
            actions = policy.act(obs)
            assert actions.shape == (2, 1) and np.abs(actions).max() <= 1.0
            np.testing.assert_array_equal(actions, reference.act(obs))
            seen = policy.reconstruct()
            assert seen.shape == obs.shape and seen.dtype == np.uint8
            np.testing.assert_array_equal(seen, reference.reconstruct())
            obs, reward, done = envs.step(actions)
    finally:
        envs.close()


PIXEL_WARM_UP = ("seed episode", "held-out episode")  # the lines of the random-action episodes
PIXEL_PLAYED = frozenset({"train_return", "AverageReturn"})  # a resumed run's envs are seeded anew


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_loses_nothing(tmp_path):
    """The smoke config (held-out episode, evaluation, media; shorter episodes) killed mid-run: a
    1000-episode run SIGKILLed (frozen first, so no race) once a row past its checkpoint at episode 2+
    is logged, then resumed to two episodes past that checkpoint. The resume keeps the rows before the
    checkpoint byte for byte, plays no seed or held-out episode again, logs the lost row again with the
    same training and held-out metrics (model, replay, held-out data and random streams restored), and
    logs every episode's row once."""
    logdir = tmp_path / "killed"
    shorter = ["env.max_episode_steps=12", "train.train_steps=3", "train.checkpoint_every=2"]  # fewer frames, steps
    args = train_cmd("--config", str(SMOKE), "--logdir", str(logdir), "logger=none", *shorter)
    killed = kill_mid_run([*args, "train.episodes=1000"], logdir, "episode", lambda row: row["episode"], 2, ROOT, ENV)
    at = killed.checkpoint
    assert 2 <= at < 1000, at  # killed mid-run
    kept = [line for line in killed.lines if json.loads(line)["episode"] <= at]
    lost = [row for row in rows_of(killed.lines) if row["episode"] > at]
    assert kept and lost

    length = max(at + 2, *(row["episode"] for row in lost))
    result = subprocess.run(
        [sys.executable, str(ROOT / "train" / "agent.py"), "--resume", str(logdir), f"train.episodes={length}"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert not [line for line in result.stdout.splitlines() if line.startswith(PIXEL_WARM_UP)], result.stdout
    lines = metric_lines(logdir)
    assert lines[: len(kept)] == kept, "rows logged before the checkpoint were rewritten (a redo?)"
    rows = rows_of(lines)
    assert [row["episode"] for row in rows] == [*range(2, length + 1)], "rows missing or logged twice"
    assert "heldout_recon_loss" in lost[0]
    assert without_timing(rows[len(kept) : len(kept) + 1], PIXEL_PLAYED) == without_timing(lost[:1], PIXEL_PLAYED)
    assert yaml.safe_load((logdir / "config.yaml").read_text())["train"]["episodes"] == length


@pytest.mark.slow
def test_two_envs_in_workers_train_and_resume(tmp_path):
    """env.num_envs=2: seed, held-out, collected and evaluation episodes come two at a time from the
    worker processes; the run stops, and a resume with more episodes continues it: the first run's
    row kept byte for byte, no seed or held-out episode played again, the counters carried on."""
    logdir = tmp_path / "two_envs"
    tiny = ["env.num_envs=2", "env.max_episode_steps=8", "train.train_steps=2", "train.chunk_length=6", "logger=none"]
    result = run_cli("--config", str(SMOKE), "--logdir", str(logdir), *tiny, "train.episodes=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(action repeat 8)" in result.stdout
    first = metric_lines(logdir)
    assert [row["episode"] for row in rows_of(first)] == [4]  # 2 seed episodes, then 2 collected
    result = run_cli("--resume", str(logdir), "train.episodes=6")
    assert result.returncode == 0, result.stderr[-3000:]
    output = (result.stdout + result.stderr).splitlines()
    assert "(action repeat 8)" in result.stdout and not [line for line in output if line.startswith(PIXEL_WARM_UP)]
    lines = metric_lines(logdir)
    assert lines[:1] == first, "the first run's row was rewritten (a redo?)"
    rows = rows_of(lines)
    assert [row["episode"] for row in rows] == [4, 6]
    batch_steps = 2 * 8 * 8  # 2 envs x 8 agent steps x action repeat 8
    assert (rows[0]["env_steps"], rows[1]["env_steps"]) == (2 * batch_steps, 3 * batch_steps)  # seed batch counts
    assert (rows[0]["train_steps"], rows[1]["train_steps"]) == (2, 4)
    assert "AverageReturn" in rows[1]


@pytest.mark.slow
def test_evaluation_plays_its_episodes_in_its_own_batch_of_envs():
    """train.eval_envs: evaluation plans for its own batch of worker envs in one call per step (the
    collection env stays single), and closing the run ends those workers."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig, evaluate, prepare
    from worldmodel.config import load_config

    overrides = ["train.eval_envs=3", "train.eval_episodes=3", "env.max_episode_steps=6", "logger=none"]
    run = prepare(load_config(PixelAgentConfig, SMOKE, overrides), None)
    try:
        batch_sizes = []
        act = run.policy.act
        run.policy.act = lambda obs, explore=False: (batch_sizes.append(len(obs)), act(obs, explore))[1]
        score, frames = evaluate(run)
        assert np.isfinite(score) and frames.shape == (7, 3, 64, 64) and frames.dtype == np.uint8
        assert batch_sizes == [3] * 6  # 3 episodes, 6 steps each, one planner call per step
        assert run.envs.num_envs == 1 and run.eval_envs.num_envs == 3
        workers = run.eval_envs._procs
    finally:
        run.close()
    assert all(proc.poll() is not None for proc in workers)


def test_trim_metrics_drops_rows_past_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"episode": e}) + "\n" for e in (2, 3, 4)) + '{"episode": 5, "rec')
    trim_metrics(path, 3)
    assert [json.loads(line)["episode"] for line in path.read_text().splitlines()] == [2, 3]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--config", str(SMOKE), "--env", "dmc:nodomain-run"], ["unknown dm_control domain", "cartpole"]),
        (["--config", str(SMOKE), "--env", "dmc:cartpole-fly"], ["unknown task", "swingup"]),
        (["--config", str(SMOKE), "env.image_size=32"], ["64", "(C, 64, 64)"]),
        (["--config", str(SMOKE), "replay.capacity_mb=0.01"], ["replay.capacity_mb", "chunk"]),
        (["--config", str(SMOKE), "train.chunk_length=1"], ["train.chunk_length"]),
    ],
)
def test_bad_input_is_one_clear_line_and_leaves_no_logdir(tmp_path, args, words):
    logdir = tmp_path / "run"
    result = run_cli("--logdir", str(logdir), *args, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not logdir.exists()


def test_resuming_a_folder_without_a_run_is_a_clear_error(tmp_path):
    result = run_cli("--resume", str(tmp_path / "nothing"), timeout=120)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: cannot resume"), result.stderr
    assert not (tmp_path / "nothing").exists()
