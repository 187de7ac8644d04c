"""What the project knows about each gymnasium MuJoCo body beyond what a built env tells: how to make it
so that its reward can be read from the observation, that reward, its termination, and which
observation dims are absolute positions hidden from the dynamics model.

Observation layouts (gymnasium 1.4, v5):

- HalfCheetah, Hopper, Walker2d: ``exclude_current_positions_from_observation=False``, so obs[0] is the
  x the forward reward differentiates; Swimmer likewise keeps (x, y) in obs[0:2]. Hidden from the model.
- Ant: made with ``include_cfrc_ext_in_observation=False`` and ``contact_cost_weight=0`` (MBPO's and
  MBBL's truncated Ant): the 84 clipped contact forces are spiky, mostly zero dims the model would have
  to predict, for a cost of at most 5e-4 x 84 = 0.04 per step beside a forward reward of order 1; without
  them the env's own reward is forward + healthy - control, exactly computable. Its forward reward
  differentiates the torso's ``xpos``, which lags ``qpos`` by a Runge-Kutta stage (up to 0.04 reward per
  step apart), so the torso's (x, y) as the env reads it is appended (``AppendBodyXY``): obs (29,) =
  qpos[2:] (13), qvel (14), torso x, y (hidden from the model).
- Reacher, Pusher: their observations hold the after-step positions the rewards measure.
- Humanoid: the forward reward follows the centre of mass, not in the observation: learned reward, but
  z = obs[0] gives the exact termination. HumanoidStandup: learned reward, never terminates.
- InvertedPendulum: reward 1 until the pole leaves +-0.2 rad (obs[1]). InvertedDoublePendulum: reward and
  termination read the tip's site position, which lags the observed joint angles by a Runge-Kutta stage
  (~3e-5 m), and its velocity penalty reads velocities the observation clips at +-10: both learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import worldmodel.envs.cheetah_cs285  # noqa: F401  registers cheetah-cs285 with gymnasium
from worldmodel.envs.rewards import (
    ANT_TORSO_X,
    RewardFn,
    ant_reward,
    cheetah_cs285_reward,
    half_cheetah_reward,
    hopper_reward,
    inverted_pendulum_reward,
    pusher_reward,
    reacher_reward,
    swimmer_reward,
    walker2d_reward,
)
from worldmodel.envs.terminations import (
    TerminationFn,
    ant_terminated,
    hopper_terminated,
    humanoid_terminated,
    inverted_pendulum_terminated,
    never,
    walker2d_terminated,
)

KEEP_POSITIONS = {"exclude_current_positions_from_observation": False}


@dataclass(frozen=True)
class Body:
    obs_size: int
    """S of the layout the functions index (checked against the built env)."""
    reward_fn: RewardFn | None
    termination_fn: TerminationFn | None
    hidden: tuple[int, ...] = ()
    """Observation dims hidden from the dynamics model: absolute positions."""
    make_kwargs: dict[str, Any] = field(default_factory=dict)
    """Extra arguments to ``gymnasium.make``."""
    append_body_xy: str | None = None
    """A body whose (x, y) ``xpos`` is appended to the observation (``state_wrappers.AppendBodyXY``)."""

    @property
    def terminates(self) -> bool:
        return self.termination_fn is not never


KNOWN_BODIES: dict[str, Body] = {
    "HalfCheetah-v5": Body(18, half_cheetah_reward, never, hidden=(0,), make_kwargs=KEEP_POSITIONS),
    # Absolute x twice: qpos[0] and the torso's centre of mass x (index 18).
    "cheetah-cs285": Body(21, cheetah_cs285_reward, never, hidden=(0, 18)),
    "Hopper-v5": Body(12, hopper_reward, hopper_terminated, hidden=(0,), make_kwargs=KEEP_POSITIONS),
    "Walker2d-v5": Body(18, walker2d_reward, walker2d_terminated, hidden=(0,), make_kwargs=KEEP_POSITIONS),
    "Ant-v5": Body(
        ANT_TORSO_X + 2, ant_reward, ant_terminated, hidden=(ANT_TORSO_X, ANT_TORSO_X + 1),
        make_kwargs={"include_cfrc_ext_in_observation": False, "contact_cost_weight": 0.0}, append_body_xy="torso",
    ),
    "Swimmer-v5": Body(10, swimmer_reward, never, hidden=(0, 1), make_kwargs=KEEP_POSITIONS),
    "Reacher-v5": Body(10, reacher_reward, never),
    "Pusher-v5": Body(23, pusher_reward, never),
    "InvertedPendulum-v5": Body(4, inverted_pendulum_reward, inverted_pendulum_terminated),
    "InvertedDoublePendulum-v5": Body(9, None, None),
    "Humanoid-v5": Body(348, None, humanoid_terminated),
    "HumanoidStandup-v5": Body(348, None, never),
}
