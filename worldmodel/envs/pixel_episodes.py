"""Playing whole episodes in pixel envs, one per env, with any policy ``frames (B, C, H, W) -> actions (B, A)``.

    episodes = run_episodes(envs, random_actions(rng, envs.num_envs, envs.action_size), desc="seed episode 1")
    episodes.add_to(replay)                 # one replay episode per env
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from worldmodel.data.episodes import EpisodeReplay
from worldmodel.envs.pixels import PixelEnvs
from worldmodel.logging.progress import progress


def random_actions(rng: np.random.Generator, num_envs: int, action_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """A policy of uniform random actions in [-1, 1] (seed episodes)."""
    return lambda obs: rng.uniform(-1.0, 1.0, size=(num_envs, action_size)).astype(np.float32)


@dataclass
class Episodes:
    """One episode per env, in the replay's aligned steps (step 0: first frame, zero action, zero reward)."""

    obs: list[list[np.ndarray]]  # per env, T_b frames (C, H, W)
    action: list[list[np.ndarray]]  # per env, T_b actions (A,)
    reward: list[list[float]]  # per env, T_b rewards

    @property
    def returns(self) -> np.ndarray:
        return np.array([sum(r) for r in self.reward], dtype=np.float64)  # (B,)

    @property
    def agent_steps(self) -> int:
        return sum(len(r) - 1 for r in self.reward)

    def add_to(self, replay: EpisodeReplay) -> None:
        for obs, action, reward in zip(self.obs, self.action, self.reward):
            replay.add_episode(np.stack(obs), np.stack(action), np.asarray(reward, np.float32))


def run_episodes(envs: PixelEnvs, policy: Callable[[np.ndarray], np.ndarray], desc: str) -> Episodes:
    """Play one episode in every env with ``policy(frames (B, C, H, W)) -> actions (B, A)``."""
    obs = envs.reset()  # (B, C, H, W)
    B, A = envs.num_envs, envs.action_size
    episodes = Episodes(
        obs=[[obs[b]] for b in range(B)],
        action=[[np.zeros(A, np.float32)] for _ in range(B)],
        reward=[[0.0] for _ in range(B)],
    )
    done = np.zeros(B, dtype=bool)
    with progress(total=envs.max_episode_steps, desc=desc, unit="step") as bar:
        while not done.all():
            actions = policy(obs)  # (B, A)
            obs, rewards, now_done = envs.step(actions)
            for b in np.flatnonzero(~done):  # envs that finished earlier hold still: nothing to record
                episodes.obs[b].append(obs[b])
                episodes.action[b].append(actions[b].astype(np.float32))
                episodes.reward[b].append(float(rewards[b]))
            done = now_done
            bar.update(1)
    return episodes
