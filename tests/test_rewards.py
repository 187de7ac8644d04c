"""The torch rewards equal the environments' own rewards on real MuJoCo transitions (every body with a known
reward), and the homework cheetah's reward is the published one (CS285 hw4 ``get_reward``) read from
MuJoCo's named joints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from state_transitions import real_transitions as body_transitions  # tests/state_transitions.py
from worldmodel.envs.bodies import KNOWN_BODIES
from worldmodel.envs.state import StateEnvConfig, make_state_envs, state_env_spec
from worldmodel.errors import UserError

CHEETAHS = ["HalfCheetah-v5", "cheetah-cs285"]
KNOWN_REWARDS = [env_id for env_id, body in KNOWN_BODIES.items() if body.reward_fn is not None]


def homework_reward(data) -> float:
    """berkeleydeeprlcourse/homework_fall2023 hw4 cs285/envs/cheetah/cheetah.py ``get_reward``, written from
    its definition on MuJoCo's named joints (not from observation indices): the forward velocity
    (``xvel``, the root slide joint's velocity) minus 10 for each front joint past its range
    (front thigh > 0.2, front shin > 0, front foot > 0)."""
    xvel = float(data.joint("rootx").qvel[0])
    penalty = 10.0 * sum(
        float(data.joint(name).qpos[0] > limit) for name, limit in (("fthigh", 0.2), ("fshin", 0.0), ("ffoot", 0.0))
    )
    return xvel - penalty


def real_transitions(env_id: str, steps: int = 60, num_envs: int = 2, seed: int = 0):
    """Random-action transitions from the real env: obs, actions, next_obs (T, B, ...), rewards (T, B) as
    ``env.step`` returned them, and the homework reward of each env's simulator state after the step (T, B)."""
    envs = make_state_envs(StateEnvConfig(id=env_id, num_envs=num_envs, episode_length=steps))
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)
    records = []
    for _ in range(steps):
        actions = rng.uniform(-1, 1, size=(num_envs, 6))
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        homework = [homework_reward(env.unwrapped.data) for env in envs.envs]  # (B,)
        records.append((obs, actions, next_obs, rewards, homework))
        obs = next_obs
    envs.close()
    return [torch.as_tensor(np.stack(x), dtype=torch.float64) for x in zip(*records)]


@pytest.mark.parametrize("env_id", CHEETAHS)
def test_reward_fn_matches_env_step(env_id):
    """The torch reward on (obs, action, next_obs) equals the reward ``env.step`` returned: gymnasium's own
    HalfCheetah-v5, and for cheetah-cs285 also the homework's definition read from the simulator."""
    obs, actions, next_obs, rewards, homework = real_transitions(env_id, steps=150)
    predicted = state_env_spec(env_id).reward_fn(obs, actions, next_obs)  # (T, B)
    assert predicted.shape == rewards.shape
    torch.testing.assert_close(predicted, rewards, rtol=1e-6, atol=1e-6)
    assert rewards.std() > 0.01  # a real signal, not a constant both sides agree on
    if env_id == "cheetah-cs285":
        # The env's reward is the project's copy of the homework's: check it against the published definition.
        torch.testing.assert_close(rewards, homework, rtol=1e-9, atol=1e-9)
        torch.testing.assert_close(predicted, homework, rtol=1e-6, atol=1e-6)


def test_cheetah_cs285_penalties_fire():
    """On the transitions test_reward_fn_matches_env_step checks (same seeds, envs and steps), random actions
    bend each front joint both past its range and not, several times within 0.05 of the threshold: every
    -10 penalty of the homework's reward is exercised, so a wrong threshold shows there."""
    envs = make_state_envs(StateEnvConfig(id="cheetah-cs285", num_envs=2, episode_length=150))
    rng = np.random.default_rng(0)
    envs.reset(seed=0)
    joints = []
    for _ in range(150):
        envs.step(rng.uniform(-1, 1, size=(2, 6)))
        joints += [[env.unwrapped.data.joint(n).qpos[0] for n in ("fthigh", "fshin", "ffoot")] for env in envs.envs]
    envs.close()
    joints = np.array(joints)  # (T * B, 3)
    for column, limit in zip(joints.T, (0.2, 0.0, 0.0)):
        assert (column > limit).any() and (column <= limit).any(), limit
        assert (np.abs(column - limit) < 0.05).sum() >= 5, limit  # values near the threshold are checked too


def test_cheetah_cs285_observation_layout():
    obs, _, next_obs, _, _ = real_transitions("cheetah-cs285", steps=5, num_envs=1)
    assert obs.shape[-1] == 21
    dt = 0.01  # one simulator step per action
    # qpos[0] moves by about qvel[0] * dt
    torch.testing.assert_close(next_obs[..., 0] - obs[..., 0], next_obs[..., 9] * dt, atol=2e-3, rtol=0.1)
    # The torso frame sits on the root joints, so its "com" x is the root x; as in the homework it is read
    # after mj_step, whose kinematics are those of the previous qpos: it lags qpos[0] by one step.
    torch.testing.assert_close(next_obs[..., 18], obs[..., 0], atol=1e-9, rtol=0)


@pytest.mark.parametrize("env_id", KNOWN_REWARDS)
def test_known_reward_matches_env_step(env_id):
    """Every known reward equals ``env.step``'s on random-action transitions of the real env, terminal ones
    included (Hopper, Walker2d and the pendulum fall; the ant is kicked out of its z range)."""
    data = body_transitions(env_id)
    predicted = state_env_spec(env_id).reward_fn(data.obs, data.actions, data.next_obs)  # (N,)
    assert predicted.shape == data.rewards.shape
    scale = max(1.0, float(data.rewards.abs().max()))
    torch.testing.assert_close(predicted, data.rewards, rtol=0, atol=1e-5 * scale)
    assert data.rewards.std() > 0.01  # a real signal, not a constant both sides agree on
    if state_env_spec(env_id).terminates:  # the healthy reward is checked on both sides of its switch
        assert 2 <= int(data.terminated.sum()) < len(data.terminated) // 2, int(data.terminated.sum())


@pytest.mark.parametrize("env_id", KNOWN_REWARDS)
def test_rewards_broadcast_over_ensemble_and_candidates(env_id):
    """The planner's call, (E, R, S) states with (R, A) actions shared by the members: each entry is the
    reward of that member's state with that candidate's action, as if computed alone. States are real
    transitions (terminal ones among them), actions random in the box."""
    spec = state_env_spec(env_id)
    data = body_transitions(env_id)
    generator = torch.Generator().manual_seed(0)
    pick = torch.randperm(len(data.obs), generator=generator)[:30]  # 30 real transitions
    obs, next_obs = data.obs[pick].view(3, 10, -1), data.next_obs[pick].view(3, 10, -1)  # (E, R, S)
    low, high = torch.tensor(spec.action_low), torch.tensor(spec.action_high)  # (A,)
    actions = low + (high - low) * torch.rand(10, spec.action_size, generator=generator, dtype=torch.float64)  # (R, A)
    rewards = spec.reward_fn(obs, actions, next_obs)  # (E, R)
    assert rewards.shape == (3, 10)
    alone = torch.stack([
        torch.stack([spec.reward_fn(obs[e, i], actions[i], next_obs[e, i]) for i in range(10)]) for e in range(3)
    ])  # (E, R), one transition at a time
    torch.testing.assert_close(rewards, alone, rtol=0, atol=1e-12)
    assert rewards.std() > 0


def test_unknown_env_id_lists_supported():
    with pytest.raises(UserError, match="supported: HalfCheetah-v5, cheetah-cs285, Hopper-v5, .*dmc:DOMAIN-TASK"):
        state_env_spec("Hopper-v9")


def test_cheetah_cs285_works_with_make_vec():
    import gymnasium

    envs = gymnasium.make_vec("cheetah-cs285", num_envs=2, vectorization_mode="sync")
    obs, _ = envs.reset(seed=1)
    assert obs.shape == (2, 21)
    assert envs.envs[0].spec.max_episode_steps == 1000  # the homework registration's time limit
    envs.close()
