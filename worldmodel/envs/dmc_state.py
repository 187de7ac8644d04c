"""A dm_control suite task seen from its state, as a gymnasium env (``--obs state --env dmc:walker-walk``).

    env = DMCStateEnv("dmc:walker-walk")
    obs, _ = env.reset(seed=0)                 # (S,) float32: walker-walk's orientations (14), height, velocity (9)
    obs, reward, terminated, truncated, _ = env.step(action)

- Observation: the suite's observation dict flattened in the suite's own key order (the order the task
  returns, e.g. walker ``orientations, height, velocity``; cheetah ``position, velocity``), each entry
  raveled (a scalar becomes one value), as float32 of shape (S,).
- Actions: a Box from the task's action spec (the suite's tasks use [-1, 1]).
- Episodes never terminate: suite tasks end only at their time limit (1000 control steps), which is a
  truncation. ``make_state_envs`` puts a shorter ``TimeLimit`` on top; the suite's own limit, when
  reached first, also reports ``truncated``.
- Seeding: ``reset(seed=s)`` reseeds the task's random state (the suite draws initial states from it)
  so the same seed gives the same episode; ``reset()`` continues the stream.
- ``render()`` (``render_mode="rgb_array"``): a 64x64 RGB frame (H, W, 3) from camera 0 (quadruped:
  camera 2), the view the pixel agent sees, through the pixel envs' ``FrameRenderer``.

The suite env is built by the pixel envs' ``DMCSimulator`` (ids parsed by ``parse_dmc_id``, so
``dmc:cup-catch`` works too); ``model`` and ``data`` expose the MuJoCo model for filming
(``worldmodel.logging.rollout.EnvCamera``).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium.spaces import Box

from worldmodel.envs.pixels import DMCSimulator, FrameRenderer, PixelEnvConfig, import_simulators, parse_dmc_id
from worldmodel.errors import UserError

RENDER_SIZE = 64  # pixels, square: the pixel agent's frame


def flatten_observation(observation: dict[str, Any]) -> np.ndarray:
    """A suite observation dict -> (S,) float32, entries in the dict's own order, each raveled."""
    return np.concatenate([np.asarray(value, dtype=np.float32).ravel() for value in observation.values()])


class DMCStateEnv(gymnasium.Env):
    """One dm_control suite task with a flat float32 state observation; never terminates."""

    metadata = {"render_modes": ["rgb_array"]}

    def __init__(self, env_id: str, render_mode: str | None = None) -> None:
        if render_mode not in (None, "rgb_array"):
            raise UserError(f"{env_id} renders only rgb_array frames, not render_mode={render_mode!r}")
        import_simulators(env_id)
        domain, task = parse_dmc_id(env_id)
        self.env_id = env_id
        self.sim = DMCSimulator(domain, task, seed=None)  # seeded by reset(seed=)
        self.model, self.data = self.sim.model, self.sim.data
        self.episode_steps = self.sim.episode_steps
        self.sim.reset()
        size = flatten_observation(self.sim.time_step.observation).shape[0]
        self.observation_space = Box(-np.inf, np.inf, shape=(size,), dtype=np.float32)
        self.action_space = Box(self.sim.low.astype(np.float32), self.sim.high.astype(np.float32), dtype=np.float32)
        self.metadata = {**self.metadata, "render_fps": round(1.0 / float(self.sim.env.control_timestep()))}
        self.render_mode = render_mode
        self._renderer: FrameRenderer | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sim.env.task.random.seed(seed)  # the task draws its initial states from this stream
        self.sim.reset()
        return flatten_observation(self.sim.time_step.observation), {}

    def step(self, action: np.ndarray):
        action = np.clip(np.asarray(action, dtype=np.float64), self.sim.low, self.sim.high)  # (A,)
        reward, last = self.sim.step(action)
        # The suite's tasks end only at their time limit: a truncation, never a termination.
        return flatten_observation(self.sim.time_step.observation), reward, False, last, {}

    def render(self) -> np.ndarray | None:
        """The current frame, (H, W, 3) uint8, when made with ``render_mode="rgb_array"``."""
        if self.render_mode != "rgb_array":
            return None
        if self._renderer is None:
            self._renderer = FrameRenderer(self.sim, PixelEnvConfig(id=self.env_id, image_size=RENDER_SIZE))
        return np.ascontiguousarray(self._renderer.render().transpose(1, 2, 0))  # (C, H, W) -> (H, W, C)

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
