"""The torch rewards equal the environments' own rewards on real MuJoCo transitions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel.envs.state import SUPPORTED, StateEnvConfig, make_state_envs, state_env_spec
from worldmodel.errors import UserError


def real_transitions(env_id: str, steps: int = 60, num_envs: int = 2, seed: int = 0):
    """Random-action transitions from the real env: obs, actions, next_obs (T, B, ...), rewards (T, B)."""
    envs = make_state_envs(StateEnvConfig(id=env_id, num_envs=num_envs, episode_length=steps))
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    records = []
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(num_envs, 6))
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        records.append((obs, actions, next_obs, rewards))
        obs = next_obs
    envs.close()
    return [torch.as_tensor(np.stack(x), dtype=torch.float64) for x in zip(*records)]


@pytest.mark.parametrize("env_id", list(SUPPORTED))
def test_reward_fn_matches_env_step(env_id):
    obs, actions, next_obs, rewards = real_transitions(env_id)
    predicted = state_env_spec(env_id).reward_fn(obs, actions, next_obs)  # (T, B)
    assert predicted.shape == rewards.shape
    torch.testing.assert_close(predicted, rewards, rtol=1e-6, atol=1e-6)
    assert rewards.std() > 0.01  # a real signal, not a constant both sides agree on


def test_cheetah_cs285_penalties_fire():
    # Random actions bend the front joints past their ranges: the -10 penalties must be part of what is checked.
    obs, actions, next_obs, rewards = real_transitions("cheetah-cs285", steps=100)
    assert (rewards < -5).any() and (rewards > -5).any()


def test_cheetah_cs285_observation_layout():
    obs, _, next_obs, _ = real_transitions("cheetah-cs285", steps=5, num_envs=1)
    assert obs.shape[-1] == 21
    dt = 0.01  # one simulator step per action
    # qpos[0] moves by about qvel[0] * dt
    torch.testing.assert_close(next_obs[..., 0] - obs[..., 0], next_obs[..., 9] * dt, atol=2e-3, rtol=0.1)
    # The torso frame sits on the root joints, so its "com" x is the root x; as in the homework it is read
    # after mj_step, whose kinematics are those of the previous qpos: it lags qpos[0] by one step.
    torch.testing.assert_close(next_obs[..., 18], obs[..., 0], atol=1e-9, rtol=0)


def test_rewards_broadcast_over_ensemble_and_candidates():
    spec = state_env_spec("HalfCheetah-v5")
    obs = torch.randn(3, 10, 18)  # (E, B*N, S)
    actions = torch.rand(10, 6)  # (B*N, A), shared by the members
    assert spec.reward_fn(obs, actions, obs + 1).shape == (3, 10)


def test_unknown_env_id_lists_supported():
    with pytest.raises(UserError, match="supported: HalfCheetah-v5, cheetah-cs285"):
        state_env_spec("Hopper-v5")


def test_cheetah_cs285_works_with_make_vec():
    import gymnasium

    envs = gymnasium.make_vec("cheetah-cs285", num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (2, 21)
    assert envs.envs[0].spec.max_episode_steps == 1000  # the homework registration's time limit
    envs.close()
