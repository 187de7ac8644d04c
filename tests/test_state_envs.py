"""The state env layer for any MuJoCo body: known terminations equal ``env.step``'s, the spec's bounds and
hidden dims are the env's, dm_control tasks from their states, action repeat, and one-line errors."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium.spaces import Box, Dict

from state_transitions import real_transitions  # tests/state_transitions.py
from worldmodel.envs.bodies import KNOWN_BODIES
from worldmodel.envs.dmc_state import flatten_observation
from worldmodel.envs.state import (
    StateEnvConfig,
    make_state_env,
    make_state_envs,
    reward_is_known,
    state_env_spec,
    termination_is_known,
)
from worldmodel.envs.state_wrappers import AppendBodyXY
from worldmodel.envs.terminations import never
from worldmodel.errors import UserError

KNOWN_TERMINATIONS = [env_id for env_id, body in KNOWN_BODIES.items() if body.termination_fn is not None]
TERMINATING = ["Hopper-v5", "Walker2d-v5", "Ant-v5", "Humanoid-v5", "InvertedPendulum-v5"]
# The absolute positions each body's reward reads, from the simulator (the others hide none).
ABSOLUTE_POSITIONS = {
    "HalfCheetah-v5": lambda data: data.qpos[:1],
    "cheetah-cs285": lambda data: [data.qpos[0], data.body("torso").xpos[0]],
    "Hopper-v5": lambda data: data.qpos[:1],
    "Walker2d-v5": lambda data: data.qpos[:1],
    "Swimmer-v5": lambda data: data.qpos[:2],
    "Ant-v5": lambda data: data.body("torso").xpos[:2],
}


@pytest.mark.parametrize("env_id", KNOWN_TERMINATIONS)
def test_known_termination_matches_env_step(env_id):
    """termination_fn equals the ``terminated`` flag of ``env.step`` on random-action transitions, with
    terminal transitions among them for every body that can fall (the ant is kicked out of its z range)."""
    data = real_transitions(env_id)
    spec = state_env_spec(env_id)
    predicted = spec.termination_fn(data.obs, data.actions, data.next_obs)  # (N,)
    assert predicted.dtype == torch.bool and predicted.shape == data.terminated.shape
    assert torch.equal(predicted, data.terminated), (predicted.nonzero(), data.terminated.nonzero())
    assert spec.terminates == (env_id in TERMINATING)
    if spec.terminates:
        assert 2 <= int(data.terminated.sum()) < len(data.terminated) // 2
    else:
        assert spec.termination_fn is never


@pytest.mark.parametrize("env_id", TERMINATING)
def test_terminations_broadcast_over_ensemble_and_candidates(env_id):
    """(E, R, S) real states with (R, A) actions: each entry as if computed alone, both values present."""
    spec = state_env_spec(env_id)
    data = real_transitions(env_id)
    ended = data.terminated.nonzero().flatten()[:5]
    pick = torch.cat([ended, torch.arange(30 - len(ended))])  # (30,): terminal transitions among them
    obs, next_obs = data.obs[pick].view(3, 10, -1), data.next_obs[pick].view(3, 10, -1)  # (E, R, S)
    actions = data.actions[:10]  # (R, A)
    terminated = spec.termination_fn(obs, actions, next_obs)  # (E, R)
    assert terminated.shape == (3, 10)
    alone = torch.stack([
        torch.stack([spec.termination_fn(obs[e, i], actions[i], next_obs[e, i]) for i in range(10)]) for e in range(3)
    ])  # (E, R)
    assert torch.equal(terminated, alone)
    assert terminated.any() and not terminated.all()
    assert torch.equal(terminated.flatten(), data.terminated[pick])


# qpos index -> the env's attribute holding that entry's healthy range (gymnasium's own numbers).
HEALTH_PROBES = {
    "Hopper-v5": {1: "_healthy_z_range", 2: "_healthy_angle_range", 3: "_healthy_state_range"},
    "Walker2d-v5": {1: "_healthy_z_range", 2: "_healthy_angle_range"},
    "Ant-v5": {2: "_healthy_z_range"},
    "Humanoid-v5": {2: "_healthy_z_range"},
}


@pytest.mark.parametrize("env_id", list(HEALTH_PROBES))
def test_termination_at_the_healthy_bounds(env_id):
    """At, just inside and just outside each bound of each healthy range, and at NaN, termination_fn equals
    ``not env.is_healthy`` (the env's own check) on the state set in the simulator: open and closed bounds
    and the exact numbers, which random transitions rarely come near."""
    env = make_state_env(env_id)
    env.reset(seed=0)
    base = env.unwrapped
    termination_fn = state_env_spec(env_id).termination_fn
    checked = 0
    for index, attribute in HEALTH_PROBES[env_id].items():
        bounds = [b for b in getattr(base, attribute) if np.isfinite(b)]
        for value in [np.nan, *(b + d for b in bounds for d in (-1e-9, 0.0, 1e-9))]:
            qpos = base.init_qpos.copy()
            qpos[index] = value
            base.set_state(qpos, base.init_qvel)
            obs = base._get_obs()
            obs = torch.as_tensor(env.observation(obs) if isinstance(env, AppendBodyXY) else obs)
            terminated = termination_fn(obs, torch.zeros(base.action_space.shape), obs)
            assert bool(terminated) == (not base.is_healthy), (attribute, value)
            checked += bool(terminated)
    assert 0 < checked < 7 * len(HEALTH_PROBES[env_id])  # both outcomes seen
    env.close()


@pytest.mark.parametrize("env_id", KNOWN_TERMINATIONS)
def test_terminations_take_the_broadcast_shape_of_all_inputs(env_id):
    """Like a reward, a termination's shape is the broadcast of obs, action and next_obs leading dims, also
    when the actions carry a dim the states lack: (3, 1, S) states with (10, A) actions -> (3, 10)."""
    spec = state_env_spec(env_id)
    obs = torch.randn(3, 1, spec.obs_size, dtype=torch.float64)  # (E, 1, S)
    actions = torch.zeros(10, spec.action_size, dtype=torch.float64)  # (R, A)
    terminated = spec.termination_fn(obs, actions, obs)
    assert terminated.shape == (3, 10) and terminated.dtype == torch.bool
    assert torch.equal(terminated, terminated[:, :1].expand(3, 10))  # the actions do not change it


@pytest.mark.parametrize("env_id", list(KNOWN_BODIES))
def test_spec_bounds_and_hidden_dims_are_the_envs(env_id):
    """action_low/high are the env's box per dim; the dims hidden from the model are the absolute positions
    the reward reads (x, and y for Swimmer; the torso's x, y as Ant's reward reads them)."""
    spec = state_env_spec(env_id)
    env = make_state_env(env_id)
    obs, _ = env.reset(seed=0)
    env.step(env.action_space.sample())
    obs, *_ = env.step(env.action_space.sample())
    data = env.unwrapped.data
    env.close()
    assert spec.action_low == tuple(env.action_space.low.tolist())
    assert spec.action_high == tuple(env.action_space.high.tolist())
    assert (spec.obs_size, spec.action_size) == (obs.shape[0], env.action_space.shape[0])
    hidden = [i for i in range(spec.obs_size) if i not in spec.model_input_dims]
    np.testing.assert_allclose(obs[hidden], ABSOLUTE_POSITIONS.get(env_id, lambda _: [])(data), rtol=0, atol=1e-12)
    assert abs(obs[hidden]).min(initial=1.0) > 0  # real positions, not zero padding


def test_action_bounds_of_the_unusual_bodies():
    assert state_env_spec("Humanoid-v5").action_high == (np.float32(0.4).item(),) * 17
    assert state_env_spec("InvertedPendulum-v5").action_low == (-3.0,)
    assert state_env_spec("Pusher-v5").action_low == (-2.0,) * 7


def test_known_flags_match_the_specs_without_building_envs():
    for env_id in [*KNOWN_BODIES, "dmc:cartpole-swingup", "MountainCarContinuous-v0"]:
        spec = state_env_spec(env_id)
        assert reward_is_known(env_id) == (spec.reward_fn is not None), env_id
        assert termination_is_known(env_id) == (spec.termination_fn is not None), env_id
    assert not reward_is_known("Humanoid-v5") and termination_is_known("Humanoid-v5")
    assert not reward_is_known("InvertedDoublePendulum-v5") and not termination_is_known("InvertedDoublePendulum-v5")
    assert not reward_is_known("HalfCheetah-v5", action_repeat=2)


def test_other_gymnasium_ids_have_learned_reward_and_termination():
    spec = state_env_spec("MountainCarContinuous-v0")
    assert (spec.obs_size, spec.action_size, spec.reward_fn, spec.termination_fn) == (2, 1, None, None)
    assert spec.terminates and spec.model_input_dims == (0, 1) and spec.max_episode_steps == 999


def test_episode_length_none_is_the_envs_own_limit_and_autoreset_is_off():
    envs = make_state_envs(StateEnvConfig(id="Reacher-v5", num_envs=2, episode_length=None))
    envs.reset(seed=0)
    truncated_at = []
    for step in range(1, 51):
        _, _, terminated, truncated, _ = envs.step(np.zeros((2, 2), np.float32))
        assert not terminated.any()
        if truncated.any():
            truncated_at.append(step)
    assert truncated_at == [50] and state_env_spec("Reacher-v5").max_episode_steps == 50
    with pytest.raises(AssertionError):  # a finished env must be reset before it steps again
        envs.step(np.zeros((2, 2), np.float32))
    envs.reset(options={"reset_mask": np.array([True, True])})
    envs.step(np.zeros((2, 2), np.float32))
    envs.close()


# ---- dm_control from states ----


def test_dmc_observation_is_the_suites_flattened_in_its_key_order():
    """Our env and a plain ``suite.load`` with the same seed start and step alike; the observation is the
    suite's dict flattened in its order (walker: orientations 14, height 1, velocity 9)."""
    from dm_control import suite

    env = make_state_env("dmc:walker-walk")
    reference = suite.load("walker", "walk", task_kwargs={"random": 3})
    obs, _ = env.reset(seed=3)
    time_step = reference.reset()
    assert obs.shape == (24,) and obs.dtype == np.float32
    np.testing.assert_array_equal(obs[:14], time_step.observation["orientations"].astype(np.float32))
    assert obs[14] == np.float32(time_step.observation["height"])
    np.testing.assert_array_equal(obs[15:], time_step.observation["velocity"].astype(np.float32))
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, size=6)
        obs, reward, terminated, truncated, _ = env.step(action)
        time_step = reference.step(action)
        np.testing.assert_array_equal(obs, flatten_observation(time_step.observation))
        assert reward == time_step.reward and not terminated and not truncated
    assert np.abs(obs[15:]).max() > 0.1  # it moved
    env.close()


def test_dmc_reset_seed_is_reproducible():
    env = make_state_env("dmc:cartpole-swingup")
    first, _ = env.reset(seed=5)
    unseeded, _ = env.reset()
    again, _ = env.reset(seed=5)
    other, _ = env.reset(seed=6)
    np.testing.assert_array_equal(first, again)
    assert not np.array_equal(first, unseeded) and not np.array_equal(first, other)
    env.close()


def test_dmc_spec_and_episode_of_1000_over_action_repeat():
    spec = state_env_spec("dmc:cartpole-swingup", action_repeat=8)
    assert (spec.obs_size, spec.action_size, spec.action_low, spec.action_high) == (5, 1, (-1.0,), (1.0,))
    assert spec.reward_fn is None and spec.termination_fn is never and not spec.terminates
    assert spec.max_episode_steps == 125 and state_env_spec("dmc:cartpole-swingup").max_episode_steps == 1000
    envs = make_state_envs(StateEnvConfig(id="dmc:cartpole-swingup", num_envs=1, episode_length=None, action_repeat=8))
    envs.reset(seed=0)
    ends = []
    for step in range(1, 126):
        _, reward, terminated, truncated, _ = envs.step(np.ones((1, 1), np.float32))
        assert not terminated.any() and 0 <= reward[0] <= 8  # a sum of 8 rewards in [0, 1]
        if truncated[0]:
            ends.append(step)
    assert ends == [125]
    envs.close()


def test_dmc_renders_rgb_frames():
    env = make_state_env("dmc:ball_in_cup-catch", render_mode="rgb_array")
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (64, 64, 3) and frame.dtype == np.uint8 and frame.std() > 10
    env.close()
    with pytest.raises(UserError, match="renders only rgb_array frames, not render_mode='human'"):
        make_state_env("dmc:ball_in_cup-catch", render_mode="human")


# ---- action repeat ----


def test_action_repeat_sums_the_single_step_rewards():
    """One agent step of k = 3 from a state = three env steps with that action from the same state."""
    repeated = make_state_env("HalfCheetah-v5", action_repeat=3)
    single = make_state_env("HalfCheetah-v5")
    obs_r, _ = repeated.reset(seed=1)
    obs_s, _ = single.reset(seed=1)
    np.testing.assert_array_equal(obs_r, obs_s)
    rng = np.random.default_rng(0)
    for _ in range(4):
        action = rng.uniform(-1, 1, size=6)
        obs_r, reward_r, *_ = repeated.step(action)
        rewards = [single.step(action)[1] for _ in range(3)]
        np.testing.assert_array_equal(obs_r, single.unwrapped._get_obs())
        assert reward_r == pytest.approx(sum(rewards), abs=1e-12) and np.std(rewards) > 0
    assert state_env_spec("HalfCheetah-v5", action_repeat=3).reward_fn is None  # intermediate states unseen
    assert state_env_spec("Hopper-v5", action_repeat=3).termination_fn is not None


def test_action_repeat_stops_at_termination():
    """The pendulum pushed hard falls within a repeat of 10: the agent step ends on the terminal env step,
    with the rewards up to it, and the known termination still reads it from the observation."""
    repeated = make_state_env("InvertedPendulum-v5", action_repeat=10)
    single = make_state_env("InvertedPendulum-v5")
    repeated.reset(seed=2)
    obs, _ = single.reset(seed=2)
    action = np.array([3.0], np.float32)
    rewards, terminated = [], False
    while not terminated:
        obs, reward, terminated, _, _ = single.step(action)
        rewards.append(reward)
    assert 1 < len(rewards) < 10  # it fell inside the first agent step
    obs_r, reward_r, terminated_r, truncated_r, _ = repeated.step(action)
    np.testing.assert_array_equal(obs_r, obs)
    assert terminated_r and not truncated_r and reward_r == sum(rewards) == len(rewards) - 1
    spec = state_env_spec("InvertedPendulum-v5", action_repeat=10)
    assert spec.termination_fn(torch.as_tensor(obs_r), torch.as_tensor(action), torch.as_tensor(obs_r))


def test_episode_length_counts_agent_steps_with_action_repeat():
    envs = make_state_envs(StateEnvConfig(id="Swimmer-v5", num_envs=1, episode_length=4, action_repeat=3))
    envs.reset(seed=0)
    flags = [bool(envs.step(np.zeros((1, 2), np.float32))[3][0]) for _ in range(4)]
    assert flags == [False, False, False, True]
    assert envs.envs[0].unwrapped.data.time == pytest.approx(12 * 0.04)  # 4 agent steps x 3 env steps x dt
    envs.close()


# ---- errors ----


class ImageEnv(gymnasium.Env):
    def __init__(self, render_mode: str | None = None) -> None:
        self.render_mode = render_mode

    observation_space = Box(0, 255, shape=(8, 8, 3), dtype=np.uint8)
    action_space = Box(-1, 1, shape=(2,), dtype=np.float32)


class DictEnv(ImageEnv):
    observation_space = Dict({"position": Box(-1, 1, shape=(2,)), "velocity": Box(-1, 1, shape=(2,))})
    action_space = Box(-1, 1, shape=(2,), dtype=np.float32)


class UnboundedEnv(ImageEnv):
    observation_space = Box(-1, 1, shape=(3,))
    action_space = Box(-np.inf, np.inf, shape=(2,), dtype=np.float32)


@pytest.fixture(scope="module")
def fake_envs():
    ids = {"ImageObs-v0": ImageEnv, "DictObs-v0": DictEnv, "Unbounded-v0": UnboundedEnv}
    for env_id, cls in ids.items():
        gymnasium.register(id=env_id, entry_point=cls, disable_env_checker=True)
    yield
    for env_id in ids:
        del gymnasium.registry[env_id]


@pytest.mark.parametrize(
    "env_id, message",
    [
        ("CartPole-v1", "^CartPole-v1 has discrete actions; the state agent plans in a continuous box$"),
        ("ImageObs-v0", "^ImageObs-v0 observes images; use --obs pixels$"),
        ("DictObs-v0", "^DictObs-v0 observes Dict .*; the state agent needs a flat vector"),
        ("Unbounded-v0", "^Unbounded-v0 has unbounded actions .*; the state agent plans in a bounded box$"),
        ("Hopper-v9", "^unknown state environment 'Hopper-v9'; supported: .* or dmc:DOMAIN-TASK .*`v5`"),
        ("NoSuchBody-v1", "^unknown state environment 'NoSuchBody-v1'; supported: HalfCheetah-v5, "),
        ("dmc:walker-fly", "^unknown task 'fly' for dm_control domain 'walker'; valid tasks: run, stand, walk$"),
        ("dmc:walker", "must look like dmc:DOMAIN-TASK"),
    ],
)
def test_errors_are_one_line(fake_envs, env_id, message):
    with pytest.raises(UserError, match=message) as error:
        state_env_spec(env_id)
    assert "\n" not in str(error.value)
    with pytest.raises(UserError, match=message):
        make_state_envs(StateEnvConfig(id=env_id, num_envs=1))
