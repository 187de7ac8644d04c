"""Known terminations as pure batched torch functions ``terminated(obs, action, next_obs) -> (...) bool``.

Each equals the ``terminated`` flag ``env.step`` returns for the observation layout the state envs use
(``worldmodel.envs.bodies``), written from gymnasium 1.4's ``*_v5.py`` sources with the same strict or
closed bounds, so that a NaN state counts as unhealthy, as there. Like the rewards they broadcast over
leading dims, take no host sync, and are tested against ``env.step`` (tests/test_state_envs.py).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(obs (..., S), action (..., A), next_obs (..., S)) -> terminated (...) bool."""

# Healthy ranges of gymnasium 1.4's v5 envs (their constructor defaults).
HOPPER_STATE_RANGE = (-100.0, 100.0)  # every qpos[2:] and qvel entry, open interval
HOPPER_Z_RANGE = (0.7, float("inf"))
HOPPER_ANGLE_RANGE = (-0.2, 0.2)
WALKER_Z_RANGE = (0.8, 2.0)
WALKER_ANGLE_RANGE = (-1.0, 1.0)
ANT_Z_RANGE = (0.2, 1.0)  # closed interval
HUMANOID_Z_RANGE = (1.0, 2.0)
PENDULUM_MAX_ANGLE = 0.2

# Observation indices (positions kept for Hopper and Walker2d: [x, z, angle, ...]; excluded for Ant and
# Humanoid, whose observation starts with the torso's z).
PLANAR_Z, PLANAR_ANGLE = 1, 2
HOPPER_STATE_START = 2  # Hopper checks state_vector()[2:] = qpos[2:] and qvel, i.e. obs[2:]
UPRIGHT_Z = 0
PENDULUM_ANGLE = 1  # InvertedPendulum: [cart x, pole angle, cart velocity, pole velocity]


def _inside(value: Tensor, bounds: tuple[float, float]) -> Tensor:
    """low < value < high, elementwise (False for NaN)."""
    return (bounds[0] < value) & (value < bounds[1])


def _all_finite(x: Tensor) -> Tensor:
    """isfinite(x).all(-1) as one reduction: the sum of the last dim is finite exactly when every entry is (an inf
    or NaN makes it inf or NaN; finite entries large enough to overflow the sum are divergent states anyway)."""
    return x.sum(-1).isfinite()


def _leading(obs: Tensor, action: Tensor, next_obs: Tensor) -> torch.Size:
    """The broadcast leading shape (...) of one call."""
    return torch.broadcast_shapes(obs.shape[:-1], action.shape[:-1], next_obs.shape[:-1])


def never(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Bodies whose episodes end only at the time limit (HalfCheetah, Swimmer, Reacher, Pusher, dm_control)."""
    return torch.zeros(_leading(obs, action, next_obs), dtype=torch.bool, device=next_obs.device)


def hopper_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Hopper-v5 (x kept): unhealthy when any of obs[2:] leaves (-100, 100), z <= 0.7 or |angle| >= 0.2.

    The env checks its unclipped velocities against (-100, 100); the observation clips them at +-10, so
    a velocity past 100 (never seen under random actions, whose fastest is ~7) would go unnoticed here.
    """
    # |v| < 100 for all v: one reduction instead of two comparisons and an all() over the dims (the planner calls
    # this every imagined step); a NaN propagates through amax and compares False, unhealthy as in the env.
    assert HOPPER_STATE_RANGE[0] == -HOPPER_STATE_RANGE[1]
    healthy_state = next_obs[..., HOPPER_STATE_START:].abs().amax(-1) < HOPPER_STATE_RANGE[1]
    healthy = (
        healthy_state
        & _inside(next_obs[..., PLANAR_Z], HOPPER_Z_RANGE)
        & _inside(next_obs[..., PLANAR_ANGLE], HOPPER_ANGLE_RANGE)
    )
    return (~healthy).expand(_leading(obs, action, next_obs))


def walker2d_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Walker2d-v5 (x kept): unhealthy when z leaves (0.8, 2.0) or the angle leaves (-1, 1)."""
    z, angle = next_obs[..., PLANAR_Z], next_obs[..., PLANAR_ANGLE]
    healthy = _inside(z, WALKER_Z_RANGE) & _inside(angle, WALKER_ANGLE_RANGE)
    return (~healthy).expand(_leading(obs, action, next_obs))


def ant_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Ant-v5 (x, y excluded): unhealthy when any entry is not finite or z leaves [0.2, 1.0]."""
    z = next_obs[..., UPRIGHT_Z]
    healthy = _all_finite(next_obs) & (ANT_Z_RANGE[0] <= z) & (z <= ANT_Z_RANGE[1])
    return (~healthy).expand(_leading(obs, action, next_obs))


def humanoid_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """Humanoid-v5 (x, y excluded): unhealthy when the torso's z leaves (1.0, 2.0)."""
    healthy = _inside(next_obs[..., UPRIGHT_Z], HUMANOID_Z_RANGE)
    return (~healthy).expand(_leading(obs, action, next_obs))


def inverted_pendulum_terminated(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """InvertedPendulum-v5: any entry not finite, or the pole more than 0.2 rad from upright."""
    fallen = ~_all_finite(next_obs) | (next_obs[..., PENDULUM_ANGLE].abs() > PENDULUM_MAX_ANGLE)
    return fallen.expand(_leading(obs, action, next_obs))
