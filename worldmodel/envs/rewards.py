"""Known rewards as pure batched torch functions ``reward(obs, action, next_obs) -> (...)``.

Every function broadcasts over any leading dims, so the planner can call it on (E, B*N, S)
model states with (B*N, A) actions, and each is tested against ``env.step`` on real
transitions (tests/test_rewards.py): that test is what catches a reward reading the wrong
observation index.
"""

from __future__ import annotations

from typing import Callable

from torch import Tensor

RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(obs (..., S), action (..., A), next_obs (..., S)) -> reward (...)."""
TerminationFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""(obs (..., S), action (..., A), next_obs (..., S)) -> terminated (...), bool."""

HALF_CHEETAH_DT = 0.05  # HalfCheetah-v5: timestep 0.01 x frame_skip 5
HALF_CHEETAH_CTRL_COST = 0.1

CS285_XVEL = 9  # qvel[0], the torso's forward velocity
CS285_FRONT_LEG, CS285_FRONT_SHIN, CS285_FRONT_FOOT = 6, 7, 8  # qpos of the front thigh, shin and foot
CS285_PENALTY = 10.0


def half_cheetah_reward(obs: Tensor, action: Tensor, next_obs: Tensor) -> Tensor:
    """HalfCheetah-v5 with ``exclude_current_positions_from_observation=False`` (obs[..., 0] is x).

    reward = (x' - x) / dt - 0.1 |a|^2, exactly what ``env.step`` returns.
    """
    forward = (next_obs[..., 0] - obs[..., 0]) / HALF_CHEETAH_DT
    return forward - HALF_CHEETAH_CTRL_COST * action.square().sum(-1)


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
