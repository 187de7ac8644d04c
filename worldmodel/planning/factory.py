"""One factory from ``planner.kind`` to a planner, and what a call of each costs in sequences.

    planner = make_planner(cfg.planner, low, high, generator=generator)   # rs | cem | icem | mppi
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldmodel.planning import icem
from worldmodel.planning.base import Planner
from worldmodel.planning.cem import CEMPlanner
from worldmodel.planning.config import PlannerConfig
from worldmodel.planning.icem import ICEMPlanner
from worldmodel.planning.mppi import MPPIPlanner

PLANNERS: dict[str, type[Planner]] = {"rs": CEMPlanner, "cem": CEMPlanner, "icem": ICEMPlanner, "mppi": MPPIPlanner}


def make_planner(
    cfg: PlannerConfig, low: Tensor, high: Tensor, *, generator: torch.Generator | None = None
) -> Planner:
    """The planner ``cfg.kind`` names, over the action box [low, high] (A,), drawing from ``generator``."""
    return PLANNERS[cfg.kind](cfg, low, high, generator=generator)


def sequences_per_call(cfg: PlannerConfig) -> int:
    """Action sequences one ``plan`` call evaluates per env (each is one model rollout of L steps)."""
    if cfg.kind == "rs":
        return cfg.candidates
    if cfg.kind == "icem":
        return icem.sequences_per_call(cfg)
    return cfg.candidates * cfg.iterations
