"""Pixel environments on real MuJoCo: frame shapes, action repeat, summed rewards, scene flags, errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from worldmodel.config import load_config
from worldmodel.errors import ConfigError, UserError
from worldmodel.envs.pixel_factory import make_pixel_envs
from worldmodel.envs.pixels import PixelEnvConfig, default_action_repeat, make_pixel_env

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def closing():
    """Collects envs and closes their renderers at the end of the test (no EGL noise at exit)."""
    envs = []
    yield envs.append
    for env in envs:
        env.close()


@pytest.mark.parametrize("env_id, action_size", [("dmc:cartpole-swingup", 1), ("HalfCheetah-v5", 6)])
def test_frames_are_uint8_chw_for_every_env(env_id, action_size, closing):
    envs = make_pixel_envs(PixelEnvConfig(id=env_id, num_envs=2), seed=0)
    closing(envs)
    obs = envs.reset()
    assert obs.shape == (2, 3, 64, 64) and obs.dtype == np.uint8
    assert envs.action_size == action_size
    obs, reward, done = envs.step(np.zeros((2, action_size), dtype=np.float32))
    assert obs.shape == (2, 3, 64, 64) and obs.dtype == np.uint8
    assert reward.shape == (2,) and done.shape == (2,) and not done.any()
    assert obs.std() > 5, "the frame should show a scene, not one flat colour"


def test_planet_action_repeat_defaults_and_override(closing):
    expected = {
        "dmc:cartpole-swingup": 8,
        "dmc:reacher-easy": 4,
        "dmc:cheetah-run": 4,
        "dmc:finger-spin": 2,
        "dmc:cup-catch": 4,
        "dmc:ball_in_cup-catch": 4,
        "dmc:walker-walk": 2,
        "dmc:hopper-hop": 2,
        "HalfCheetah-v5": 4,
        "Hopper-v5": 2,
    }
    assert {env_id: default_action_repeat(env_id) for env_id in expected} == expected
    env = make_pixel_env(PixelEnvConfig(id="dmc:cartpole-swingup"))
    closing(env)
    assert env.action_repeat == 8 and env.max_episode_steps == 1000 // 8
    env = make_pixel_env(PixelEnvConfig(id="dmc:cartpole-swingup", action_repeat=3, max_episode_steps=7))
    closing(env)
    assert env.action_repeat == 3 and env.max_episode_steps == 7


def test_cup_catch_is_ball_in_cup(closing):
    """PlaNet's "cup-catch" is the suite's ball_in_cup-catch: both names give the same env."""
    cup = make_pixel_env(PixelEnvConfig(id="dmc:cup-catch"), seed=1)
    ball_in_cup = make_pixel_env(PixelEnvConfig(id="dmc:ball_in_cup-catch"), seed=1)
    closing(cup)
    closing(ball_in_cup)
    assert type(cup.sim.env.task).__name__ == type(ball_in_cup.sim.env.task).__name__ == "BallInCup"
    np.testing.assert_array_equal(cup.reset(), ball_in_cup.reset())


@pytest.mark.parametrize("env_id", ["dmc:cartpole-swingup", "HalfCheetah-v5"])
def test_one_repeated_step_equals_the_repeats_taken_one_by_one(env_id, closing):
    """Rewards are summed over the repeat, and the frame is the one after the last physics step."""
    repeated = make_pixel_env(PixelEnvConfig(id=env_id, action_repeat=3), seed=5)
    single = make_pixel_env(PixelEnvConfig(id=env_id, action_repeat=1), seed=5)
    closing(repeated)
    closing(single)
    np.testing.assert_array_equal(repeated.reset(), single.reset())
    rng = np.random.default_rng(0)
    for _ in range(4):
        action = rng.uniform(-1, 1, repeated.action_size)
        frame, reward, done = repeated.step(action)
        rewards = [single.step(action)[1] for _ in range(3)]
        assert reward == pytest.approx(sum(rewards), rel=1e-6, abs=1e-9)
        np.testing.assert_array_equal(frame, single.renderer.render())
        assert not done
    assert sum(rewards) != 0.0


def test_episode_ends_after_max_episode_steps(closing):
    envs = make_pixel_envs(PixelEnvConfig(id="dmc:cartpole-swingup", max_episode_steps=3, num_envs=2))
    closing(envs)
    envs.reset()
    dones = [envs.step(np.zeros((2, 1)))[2] for _ in range(3)]
    assert [d.tolist() for d in dones] == [[False, False], [False, False], [True, True]]


def test_actions_in_unit_box_map_to_env_bounds(closing):
    env = make_pixel_env(PixelEnvConfig(id="dmc:cartpole-swingup"))
    closing(env)
    env.reset()
    env.step(np.array([1.0]))
    physics = env.sim.env.physics
    np.testing.assert_allclose(physics.data.ctrl, env.sim.high)
    env.step(np.array([-5.0]))  # outside the box: clipped
    np.testing.assert_allclose(physics.data.ctrl, env.sim.low)


def test_shadows_switch_is_honoured(closing):
    frames = {}
    for shadows in (False, True):
        env = make_pixel_env(PixelEnvConfig(id="HalfCheetah-v5", shadows=shadows), seed=0)
        closing(env)
        frames[shadows] = env.reset().astype(np.int32)
        assert bool(env.renderer.renderer.scene.flags[env.renderer.mujoco.mjtRndFlag.mjRND_SHADOW]) == shadows
    # Shadows darken part of the floor: same state, visibly different frames.
    assert np.abs(frames[True] - frames[False]).mean() > 0.5
    assert frames[True].sum() < frames[False].sum()


@pytest.mark.parametrize(
    "env_id, words",
    [
        ("dmc:nodomain-swingup", ["unknown dm_control domain", "cartpole", "walker"]),
        ("dmc:cartpole-nosuchtask", ["unknown task", "swingup", "balance"]),
        ("dmc:cartpole", ["dmc:DOMAIN-TASK"]),
        ("NoSuchEnv-v5", ["unknown environment", "HalfCheetah-v5"]),
        ("CartPole-v1", ["not a MuJoCo env"]),
    ],
)
def test_bad_env_ids_are_one_line_user_errors(env_id, words):
    with pytest.raises(UserError) as info:
        make_pixel_env(PixelEnvConfig(id=env_id))
    message = str(info.value)
    assert "\n" not in message
    for word in words:
        assert word in message


def test_bad_frame_sizes_are_clear_errors():
    with pytest.raises(ConfigError, match="env.image_size must be between"):
        load_config(PixelEnvConfig, None, ["image_size=4"])
    with pytest.raises(UserError, match="too large") as info:
        make_pixel_env(PixelEnvConfig(id="dmc:cartpole-swingup", image_size=500))
    assert "\n" not in str(info.value)


def test_a_gl_backend_that_cannot_render_names_the_ones_to_try():
    code = (
        "from worldmodel.envs.pixels import PixelEnvConfig, make_pixel_env\n"
        "from worldmodel.errors import UserError\n"
        "try:\n    make_pixel_env(PixelEnvConfig())\n"
        "except UserError as err:\n    print(err)\n"
    )
    env = {**os.environ, "MUJOCO_GL": "nosuchbackend"}
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    line = result.stdout.strip()
    assert "MUJOCO_GL='nosuchbackend'" in line and "egl, osmesa or glfw" in line and "\n" not in line
