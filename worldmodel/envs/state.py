"""State environments for the ensemble agent: N gymnasium envs stepped together, plus the
facts the model and planner need about them (``StateEnvSpec``).

    cfg = StateEnvConfig(id="HalfCheetah-v5", num_envs=4, episode_length=250)
    spec = state_env_spec(cfg.id)          # no simulator needed: validates the id early
    envs = make_state_envs(cfg)            # gymnasium SyncVectorEnv of cfg.num_envs envs

Each supported id brings its torch reward (``worldmodel.envs.rewards``) and the observation
dims the model may see: absolute x positions are hidden from it (the env keeps them so the
reward stays exact, the model only predicts their deltas), since a cheetah that runs further
than in its training data would otherwise feed the model inputs it never saw.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import gymnasium
import numpy as np

import worldmodel.envs.cheetah_cs285  # noqa: F401  registers cheetah-cs285 with gymnasium
from worldmodel.config import check
from worldmodel.envs.rewards import RewardFn, cheetah_cs285_reward, half_cheetah_reward
from worldmodel.errors import UserError


@dataclass
class StateEnvConfig:
    id: str = "HalfCheetah-v5"
    """Environment: HalfCheetah-v5 (gymnasium, x kept in the observation) or cheetah-cs285 (the homework's)."""
    num_envs: int = 4
    """N environments stepped together; the planner plans for all of them in one batched call."""
    episode_length: int = 1000
    """Steps per episode (HalfCheetah-v5 ends at 1000, the homework cheetah at 500)."""

    def __post_init__(self) -> None:
        check(self.num_envs >= 1, f"env.num_envs must be >= 1, got {self.num_envs}")
        check(self.episode_length >= 1, f"env.episode_length must be >= 1, got {self.episode_length}")


@dataclass(frozen=True)
class StateEnvSpec:
    """What the agent needs to know about an environment, without building one."""

    id: str
    gym_id: str
    obs_size: int
    """S, length of the env's observation (absolute positions included)."""
    action_size: int
    """A."""
    action_low: float
    action_high: float
    reward_fn: RewardFn
    """(obs, action, next_obs) -> reward, equal to the env's own."""
    model_input_dims: tuple[int, ...]
    """Observation dims the dynamics model takes as input (it predicts deltas for all S)."""
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra arguments to ``gymnasium.make``."""


def _spec(
    env_id: str, gym_id: str, obs_size: int, reward_fn: RewardFn, hidden: tuple[int, ...], **make_kwargs: Any
) -> StateEnvSpec:
    seen = tuple(i for i in range(obs_size) if i not in hidden)
    return StateEnvSpec(env_id, gym_id, obs_size, 6, -1.0, 1.0, reward_fn, seen, make_kwargs)


SUPPORTED: dict[str, StateEnvSpec] = {
    # x = qpos[0] kept in the observation so that (x' - x) / dt is the exact forward reward.
    "HalfCheetah-v5": _spec(
        "HalfCheetah-v5", "HalfCheetah-v5", 18, half_cheetah_reward, hidden=(0,),
        exclude_current_positions_from_observation=False,
    ),
    # Absolute x twice: qpos[0] and the torso's centre of mass x (index 18).
    "cheetah-cs285": _spec("cheetah-cs285", "cheetah-cs285", 21, cheetah_cs285_reward, hidden=(0, 18)),
}


def state_env_spec(env_id: str) -> StateEnvSpec:
    """The spec of a supported id; anything else is a ``UserError`` listing the valid ids."""
    if env_id not in SUPPORTED:
        raise UserError(
            f"unknown state environment {env_id!r}; supported: {', '.join(SUPPORTED)} "
            "(each needs a known reward function)"
        )
    return SUPPORTED[env_id]


def make_state_envs(cfg: StateEnvConfig, *, render_mode: str | None = None) -> gymnasium.vector.VectorEnv:
    """``cfg.num_envs`` copies of ``cfg.id`` in a SyncVectorEnv (MuJoCo steps in microseconds:
    subprocesses would cost more than they save), truncated at ``cfg.episode_length``."""
    spec = state_env_spec(cfg.id)
    envs = gymnasium.make_vec(
        spec.gym_id,
        num_envs=cfg.num_envs,
        vectorization_mode="sync",
        max_episode_steps=cfg.episode_length,
        render_mode=render_mode,
        **spec.make_kwargs,
    )
    obs_shape, action_shape = envs.single_observation_space.shape, envs.single_action_space.shape
    assert obs_shape == (spec.obs_size,) and action_shape == (spec.action_size,), (spec, obs_shape, action_shape)
    assert np.all(envs.single_action_space.low == spec.action_low), envs.single_action_space
    assert np.all(envs.single_action_space.high == spec.action_high), envs.single_action_space
    return envs
