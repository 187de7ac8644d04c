"""Trajectory optimisers for model-predictive control. They never see a model: they maximise a
batched objective ``returns = objective(actions)`` with actions (B, N, L, A) -> returns (B, N)."""

from worldmodel.planning.cem import CEMPlanner, Objective, PlannerConfig

__all__ = ["CEMPlanner", "Objective", "PlannerConfig"]
