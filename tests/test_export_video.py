"""scripts/export_video.py after a tiny training run: a readable mp4 of whole episodes (one frame
per agent step), the return of each episode printed, and one clear line for bad input."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import imageio.v3 as iio
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco is imported: headless rendering

# Loading a pixel agent here imports triton's LLVM, which must come before the filming tests' EGL context
# (see worldmodel/models/world_model.py), so it is imported before any test runs.
from worldmodel.agents.pixel_agent import load_agent  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
EXPORT = REPO / "scripts" / "export_video.py"
EVALUATE = REPO / "scripts" / "evaluate_pixels.py"
STATE_STEPS = 20
PIXEL_STEPS = 8

STATE_OVERRIDES = [
    "logger=none",
    f"env.episode_length={STATE_STEPS}",
    "model.train_steps=10",
    "planner.candidates=20",
    "planner.elites=4",
    "planner.iterations=1",
    "train.iterations=1",
]
PIXEL_OVERRIDES = [
    "logger=none",
    f"env.max_episode_steps={PIXEL_STEPS}",
    "train.episodes=2",
    "train.seed_episodes=1",
    "train.train_steps=1",
    "train.batch_size=2",
    "train.chunk_length=4",
    "train.heldout_episodes=0",
    "planner.candidates=8",
    "planner.elites=2",
    "planner.iterations=1",
    "planner.horizon=3",
]


def run(args: list, timeout: float = 240) -> subprocess.CompletedProcess:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), WANDB_MODE="disabled")
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def train(tmp_path_factory, obs: str, config: str, overrides: list[str]) -> Path:
    logdir = tmp_path_factory.mktemp(obs) / "run"
    result = run([REPO / "train" / "agent.py", "--obs", obs, "--config", config, "--logdir", logdir, *overrides])
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir


@pytest.fixture(scope="module")
def state_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory, "state", "configs/state_smoke.yaml", STATE_OVERRIDES)


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory) -> Path:
    return train(tmp_path_factory, "pixels", "configs/pixels_smoke.yaml", PIXEL_OVERRIDES)


def printed_returns(stdout: str) -> list[float]:
    return [float(x) for x in re.findall(r"^episode \d+: return (-?[\d.]+) over \d+ steps$", stdout, re.M)]


@pytest.mark.slow
def test_state_agent_video_holds_whole_episodes(state_run, tmp_path):
    out = tmp_path / "cheetah.mp4"
    result = run([EXPORT, "--run", state_run, "--episodes", "2", "--out", out, "--device", "cpu"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(printed_returns(result.stdout)) == 2, result.stdout
    assert f"wrote {out}" in result.stdout
    video = iio.imread(out)
    assert video.shape == (2 * STATE_STEPS, 256, 256, 3)
    assert video.std() > 10  # a rendered scene, not a blank frame
    assert iio.immeta(out)["fps"] == pytest.approx(20)  # HalfCheetah-v5 in real time


@pytest.mark.slow
def test_pixel_agent_video_side_by_side(pixel_run, tmp_path):
    out = tmp_path / "cartpole.mp4"
    result = run([EXPORT, "--run", pixel_run, "--side-by-side", "--out", out, "--fps", "10", "--device", "cpu"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert len(printed_returns(result.stdout)) == 1, result.stdout
    video = iio.imread(out)
    assert video.shape == (PIXEL_STEPS, 256, 512, 3)  # 64x64 real | reconstruction, upscaled 4x
    assert iio.immeta(out)["fps"] == pytest.approx(10)


@pytest.mark.slow
def test_default_output_lands_in_the_run_folder(pixel_run):
    result = run([EXPORT, "--run", pixel_run, "--device", "cpu"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert iio.imread(pixel_run / "rollout.mp4").shape == (PIXEL_STEPS, 256, 256, 3)


@pytest.mark.slow
def test_side_by_side_needs_a_pixel_agent(state_run, tmp_path):
    result = run([EXPORT, "--run", state_run, "--side-by-side", "--out", tmp_path / "x.mp4"])
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: --side-by-side needs a pixel agent")
    assert not (tmp_path / "x.mp4").exists()


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_no_such_run_is_one_clear_line(tmp_path):
    assert "no run folder" in one_error_line(run([EXPORT, "--run", tmp_path / "nothing"], timeout=120))


def test_run_without_checkpoint_is_one_clear_line(tmp_path):
    logdir = tmp_path / "run"
    logdir.mkdir()
    (logdir / "config.yaml").write_text((REPO / "configs" / "state_smoke.yaml").read_text())
    assert "no policy.pt" in one_error_line(run([EXPORT, "--run", logdir], timeout=120))


def test_folder_without_config_is_one_clear_line(tmp_path):
    assert "no config.yaml" in one_error_line(run([EXPORT, "--run", tmp_path], timeout=120))


# ---- the filming helpers, without training -------------------------------------------------


def test_record_state_episode_films_one_frame_per_step():
    import numpy as np

    from worldmodel.envs.state import StateEnvConfig, make_state_envs
    from worldmodel.logging.rollout import record_state_episode

    actions = np.random.default_rng(0).uniform(-1, 1, size=(6, 1, 6)).astype(np.float32)  # (T, B, A)
    config = StateEnvConfig(id="HalfCheetah-v5", num_envs=1, episode_length=6)
    envs = make_state_envs(config)
    try:
        step = iter(actions)
        rollout = record_state_episode(envs, lambda obs: next(step), seed=0, size=64)
    finally:
        envs.close()
    assert rollout.frames.shape == (6, 64, 64, 3) and rollout.frames.dtype == np.uint8
    assert rollout.rewards.shape == (6,) and rollout.fps == 20
    # The same episode stepped by hand in a fresh env: its rewards as env.step returns them.
    envs = make_state_envs(config)
    envs.reset(seed=0)
    expected = [envs.step(action)[1][0] for action in actions]
    envs.close()
    np.testing.assert_allclose(rollout.rewards, expected, rtol=1e-12)
    assert rollout.episode_return == pytest.approx(sum(expected))
    assert rollout.frames.std() > 10  # the scene, not a blank image


class StubPixelPolicy:
    """Acts with zeros; 'reconstructs' the inverted frame."""

    def reset(self):
        self.last = None

    def act(self, obs, explore=False):
        import numpy as np

        self.last = obs
        return np.zeros((obs.shape[0], 1), np.float32)

    def reconstruct(self):
        return 255 - self.last


def test_record_pixel_episode_side_by_side():
    import numpy as np

    from worldmodel.envs.pixel_factory import make_pixel_envs
    from worldmodel.envs.pixels import PixelEnvConfig
    from worldmodel.logging.rollout import pixel_env_fps, record_pixel_episode

    envs = make_pixel_envs(PixelEnvConfig(id="dmc:cartpole-swingup", max_episode_steps=5), seed=0)
    try:
        rollout = record_pixel_episode(envs, StubPixelPolicy(), side_by_side=True, scale=2)
        fps = pixel_env_fps(envs)
    finally:
        envs.close()
    assert rollout.frames.shape == (5, 128, 256, 3)
    left, right = rollout.frames[..., :128, :], rollout.frames[..., 128:, :]
    assert np.array_equal(right, 255 - left)
    assert fps == pytest.approx(1 / (0.01 * 8))  # cartpole: 0.01 s control step, action repeat 8


# ---- scripts/evaluate_pixels.py --------------------------------------------------------------


@pytest.mark.slow
def test_evaluate_pixels_plays_the_episodes_with_the_planner_asked_for(pixel_run):
    import json

    import numpy as np

    result = run([EVALUATE, "--run", pixel_run, "--episodes", 3, "--envs", 2, "planner.candidates=12"])
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert len(summary["returns"]) == 3 and summary["planner"].startswith("cem 12 x H3")
    assert len(re.findall(r"^episode \d+: return", result.stdout, re.M)) == 3
    # The same episodes played here by the loaded agent with that planner (2 envs from seed 1000, then 1 from
    # seed 1002, the script's defaults), their returns summed from the rewards env.step gives.
    policy = load_agent(pixel_run, device="cpu", overrides=["planner.candidates=12"])
    expected = []
    for count, seed in ((2, 1000), (1, 1002)):
        envs = policy.make_envs(num_envs=count, seed=seed)
        try:
            policy.reset()
            obs, total, done = envs.reset(), np.zeros(count), np.zeros(count, dtype=bool)
            while not done.all():
                obs, reward, now_done = envs.step(policy.act(obs))
                total += np.where(done, 0.0, reward)
                done |= now_done
        finally:
            envs.close()
        expected += total.tolist()
    np.testing.assert_allclose(summary["returns"], expected, rtol=1e-6)
    assert summary["mean"] == pytest.approx(np.mean(expected)) and summary["std"] == pytest.approx(np.std(expected))


def test_evaluate_pixels_changes_only_the_planner(tmp_path):
    """Refused before any run is read, so a folder without a run (no training needed) shows it."""
    result = run([EVALUATE, "--run", tmp_path, "model.belief_size=8"], timeout=120)
    assert result.returncode == 2 and result.stderr.strip().splitlines() == [
        "error: only planner.* can change for evaluation, got model.belief_size=8"
    ]
