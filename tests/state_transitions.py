"""Real transitions of the state envs for the reward and termination tests: random actions in the action
box, finished envs reset with a reset_mask (autoreset is off), and for bodies that random actions never
topple a kick that makes them terminate.

A kick writes one velocity into ``data.qvel`` between steps. The observation the next transition starts
from then has stale velocities but valid positions; the known rewards and terminations read only
positions from ``obs`` (and everything from ``next_obs``), so the comparison stays exact.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from worldmodel.envs.state import StateEnvConfig, make_state_envs


def kick_ant_up(env) -> None:
    """An 8 m/s upward torso velocity: the ant leaves its healthy z range [0.2, 1.0] within a few steps."""
    env.unwrapped.data.qvel[2] = 8.0


KICKS = {"Ant-v5": kick_ant_up}
KICK_EVERY = 40  # steps between kicks of env 0


@dataclass(frozen=True)
class Transitions:
    """N real transitions, float64: obs/next_obs (N, S), actions (N, A), rewards (N,), terminated (N,) bool."""

    obs: torch.Tensor
    actions: torch.Tensor
    next_obs: torch.Tensor
    rewards: torch.Tensor
    terminated: torch.Tensor


@functools.lru_cache(maxsize=None)
def real_transitions(env_id: str, steps: int = 150, num_envs: int = 2, seed: int = 0) -> Transitions:
    """``steps`` vector steps of ``num_envs`` envs of ``env_id`` with uniform random actions."""
    envs = make_state_envs(StateEnvConfig(id=env_id, num_envs=num_envs, episode_length=None))
    low, high = envs.single_action_space.low, envs.single_action_space.high
    rng = np.random.default_rng(seed)
    obs, _ = envs.reset(seed=seed)  # (B, S)
    records = []
    for step in range(steps):
        if env_id in KICKS and step % KICK_EVERY == KICK_EVERY - 1:
            KICKS[env_id](envs.envs[0])
        actions = rng.uniform(low, high, size=(num_envs, len(low)))  # (B, A)
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        records.append((obs, actions, next_obs, rewards, terminated))
        obs = next_obs
        done = terminated | truncated  # (B,)
        if done.any():
            obs, _ = envs.reset(options={"reset_mask": done})  # the unfinished envs keep their observation
    envs.close()
    fields = [np.concatenate(x) for x in zip(*records)]  # each (steps * B, ...)
    *floats, terminated = fields
    return Transitions(*(torch.as_tensor(x, dtype=torch.float64) for x in floats), torch.as_tensor(terminated))
