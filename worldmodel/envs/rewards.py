"""Known rewards as pure batched torch functions ``reward(obs, action, next_obs) -> (...)``.

Every function broadcasts over any leading dims, so the planner can call it on (E, B*N, S)
model states with (B*N, A) actions, and each is tested against ``env.step`` on real
transitions (tests/test_rewards.py, tests/test_state_envs.py): that test is what catches a
reward reading the wrong observation index. Each is written from gymnasium 1.4's ``*_v5.py``
source for the observation layout the state envs use (``worldmodel.envs.bodies``):

- forward rewards are (x' - x) / dt of the x the env's own reward reads, kept in the observation;
- healthy rewards are paid after the step while the new state is healthy (= not terminated);
- Reacher and Pusher distances are those after the step, which their observations hold.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

from worldmodel.envs.terminations import (
    ant_terminated,
    hopper_terminated,
    inverted_pendulum_terminated,
    walker2d_terminated,
)

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(obs (..., S), action (..., A), next_obs (..., S)) -> reward (...)."""

HALF_CHEETAH_DT = 0.05  # HalfCheetah-v5: timestep 0.01 x frame_skip 5
HALF_CHEETAH_CTRL_COST = 0.1

CS285_XVEL = 9  # qvel[0], the torso's forward velocity
CS285_FRONT_LEG, CS285_FRONT_SHIN, CS285_FRONT_FOOT = 6, 7, 8  # qpos of the front thigh, shin and foot
CS285_PENALTY = 10.0

PLANAR_DT = 0.008  # Hopper-v5 and Walker2d-v5: timestep 0.002 x frame_skip 4
PLANAR_CTRL_COST = 1e-3
HEALTHY_REWARD = 1.0  # Hopper, Walker2d, Ant
ANT_DT = 0.05  # timestep 0.01 x frame_skip 5
ANT_CTRL_COST = 0.5
ANT_OBS = 27  # qpos[2:] (13) + qvel (14): Ant-v5 without contact forces
ANT_TORSO_X = ANT_OBS  # then the torso's (x, y) as the reward reads it (``state_wrappers.AppendBodyXY``)
SWIMMER_DT = 0.04  # timestep 0.01 x frame_skip 4
SWIMMER_CTRL_COST = 1e-4
REACHER_TO_TARGET = slice(8, 10)  # fingertip - target (x, y); both bodies sit at z = 0.01
PUSHER_TIPS, PUSHER_OBJECT, PUSHER_GOAL = slice(14, 17), slice(17, 20), slice(20, 23)  # body positions (x, y, z)
PUSHER_NEAR_WEIGHT, PUSHER_CTRL_COST = 0.5, 0.1


def half_cheetah_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """HalfCheetah-v5 with ``exclude_current_positions_from_observation=False`` (obs[..., 0] is x).

    reward = (x' - x) / dt - 0.1 |a|^2, exactly what ``env.step`` returns.
    """
    return _forward(obs, next_obs, 0, HALF_CHEETAH_DT) - HALF_CHEETAH_CTRL_COST * action.square().sum(-1)


def cheetah_cs285_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """The homework cheetah (berkeleydeeprlcourse hw4 ``get_reward``), a function of next_obs only.

    reward = forward velocity - 10 for each front joint (thigh > 0.2, shin > 0, foot > 0) bent too far.
    """
    penalties = (
        (next_obs[..., CS285_FRONT_LEG] > 0.2).to(next_obs.dtype)
        + (next_obs[..., CS285_FRONT_SHIN] > 0.0).to(next_obs.dtype)
        + (next_obs[..., CS285_FRONT_FOOT] > 0.0).to(next_obs.dtype)
    )
    return next_obs[..., CS285_XVEL] - CS285_PENALTY * penalties


def _forward(obs: Tensor, next_obs: Tensor, x: int, dt: float) -> Tensor:
    """(x' - x) / dt of observation index ``x``, (...)."""
    return (next_obs[..., x] - obs[..., x]) / dt


def _healthy(terminated: Tensor, like: Tensor) -> Tensor:
    """HEALTHY_REWARD where the new state is healthy (not terminated), else 0; in ``like``'s dtype."""
    return HEALTHY_REWARD * (~terminated).to(like.dtype)


def hopper_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Hopper-v5 (x kept, obs[..., 0]): (x' - x) / dt + 1 while healthy - 1e-3 |a|^2."""
    healthy = _healthy(hopper_terminated(obs, action, next_obs), next_obs)
    return _forward(obs, next_obs, 0, PLANAR_DT) + healthy - PLANAR_CTRL_COST * action.square().sum(-1)


def walker2d_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Walker2d-v5 (x kept, obs[..., 0]): (x' - x) / dt + 1 while healthy - 1e-3 |a|^2."""
    healthy = _healthy(walker2d_terminated(obs, action, next_obs), next_obs)
    return _forward(obs, next_obs, 0, PLANAR_DT) + healthy - PLANAR_CTRL_COST * action.square().sum(-1)


def ant_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Ant-v5 without contact forces (``contact_cost_weight=0``), the torso's (x, y) appended:
    (torso x' - torso x) / dt + 1 while healthy - 0.5 |a|^2."""
    healthy = _healthy(ant_terminated(obs, action, next_obs), next_obs)
    return _forward(obs, next_obs, ANT_TORSO_X, ANT_DT) + healthy - ANT_CTRL_COST * action.square().sum(-1)


def swimmer_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Swimmer-v5 (x, y kept, obs[..., 0:2]): (x' - x) / dt - 1e-4 |a|^2."""
    return _forward(obs, next_obs, 0, SWIMMER_DT) - SWIMMER_CTRL_COST * action.square().sum(-1)


def reacher_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Reacher-v5: -|fingertip - target| - |a|^2, the distance after the step (next_obs[..., 8:10])."""
    return -next_obs[..., REACHER_TO_TARGET].norm(dim=-1) - action.square().sum(-1)


def pusher_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Pusher-v5: -0.5 |object - arm tip| - |object - goal| - 0.1 |a|^2, positions after the step."""
    near = (next_obs[..., PUSHER_OBJECT] - next_obs[..., PUSHER_TIPS]).norm(dim=-1)
    dist = (next_obs[..., PUSHER_OBJECT] - next_obs[..., PUSHER_GOAL]).norm(dim=-1)
    return -PUSHER_NEAR_WEIGHT * near - dist - PUSHER_CTRL_COST * action.square().sum(-1)


def inverted_pendulum_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5: 1 while the pole is up (not terminated), else 0."""
    terminated = inverted_pendulum_terminated(obs, action, next_obs)
    return (~terminated).to(next_obs.dtype)
