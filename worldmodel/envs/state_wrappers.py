"""Gymnasium wrappers of the state envs: repeating actions, and showing a body position a reward reads.

    env = ActionRepeat(gymnasium.make("Hopper-v5"), repeat=2)   # one agent step = 2 env steps, rewards summed
    env = AppendBodyXY(gymnasium.make("Ant-v5", ...), "torso")  # obs + the torso's (x, y) as the reward reads it
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium.spaces import Box


class ActionRepeat(gymnasium.Wrapper):
    """Hold each action for ``repeat`` env steps; the reward is their sum. The repeat stops early at the
    first step that terminates or truncates, and that step's observation and flags are returned.

    Env steps are counted as agent steps x ``repeat`` (an agent step cut short by a termination is
    counted in full); the caller does the counting.
    """

    def __init__(self, env: gymnasium.Env, repeat: int) -> None:
        super().__init__(env)
        assert repeat >= 1, repeat
        self.repeat = repeat
        fps = env.metadata.get("render_fps")
        if fps:  # frames of a filmed episode come one per agent step
            self.metadata = {**env.metadata, "render_fps": fps / repeat}

    def step(self, action: Any):
        total = 0.0
        for _ in range(self.repeat):
            obs, reward, terminated, truncated, info = self.env.step(action)
            total += float(reward)
            if terminated or truncated:
                break
        return obs, total, terminated, truncated, info


class AppendBodyXY(gymnasium.ObservationWrapper):
    """Append a body's (x, y) from ``data.xpos``, the frame position MuJoCo computed during the last physics
    step (a Runge-Kutta stage behind ``qpos``), to the observation (S,) -> (S + 2,).

    Ant-v5's forward reward is the change of exactly this value over a step; ``qpos`` differs from it by
    up to ~2 mm, so a reward computed from ``qpos`` would be off by up to ~0.04 per step.
    """

    def __init__(self, env: gymnasium.Env, body: str) -> None:
        super().__init__(env)
        self.body = body
        space = env.observation_space
        assert isinstance(space, Box) and len(space.shape) == 1, space
        self.observation_space = Box(-np.inf, np.inf, shape=(space.shape[0] + 2,), dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        xy = self.env.unwrapped.data.body(self.body).xpos[:2]  # (2,)
        return np.concatenate([observation, xy]).astype(self.observation_space.dtype)
