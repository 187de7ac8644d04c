"""Trajectory optimisers for model-predictive control. They never see a model: they maximise a
batched objective ``returns = objective(actions)`` with actions (B, N, L, A) -> returns (B, N).

``make_planner(cfg, low, high, generator=...)`` builds the one ``cfg.kind`` names: random shooting and
CEM (``cem.py``), iCEM (``icem.py``), MPPI (``mppi.py``); all share ``base.Planner``'s interface."""

from worldmodel.planning.base import Objective, Planner
from worldmodel.planning.cem import CEMPlanner
from worldmodel.planning.config import PlannerConfig
from worldmodel.planning.factory import make_planner, sequences_per_call
from worldmodel.planning.icem import ICEMPlanner
from worldmodel.planning.mppi import MPPIPlanner

__all__ = [
    "CEMPlanner",
    "ICEMPlanner",
    "MPPIPlanner",
    "Objective",
    "Planner",
    "PlannerConfig",
    "make_planner",
    "sequences_per_call",
]
