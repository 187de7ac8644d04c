"""CEM and random shooting on toy objectives with known optima (no model involved)."""

from __future__ import annotations

import torch

from worldmodel.planning.cem import CEMPlanner, PlannerConfig

A, L = 3, 4
TARGET = torch.tensor([[0.5, -0.3, 0.8], [-0.6, 0.2, 0.0], [0.1, 0.9, -0.9], [0.0, -0.5, 0.4]])  # (L, A) in the box


def quadratic(actions: torch.Tensor) -> torch.Tensor:
    """(B, N, L, A) -> (B, N): maximal (0) at TARGET, the same for every planning problem."""
    return -(actions - TARGET).square().sum(dim=(-1, -2))


def plan_with(kind: str, candidates: int, seed: int, iterations: int = 6, elites: int = 20, objective=quadratic):
    cfg = PlannerConfig(kind=kind, horizon=L, candidates=candidates, iterations=iterations, elites=elites)
    planner = CEMPlanner(cfg, low=-torch.ones(A), high=torch.ones(A), generator=torch.Generator().manual_seed(seed))
    return planner.plan(objective, batch_size=2)  # (B, L, A)


def test_cem_finds_the_optimum_of_a_quadratic():
    plan = plan_with("cem", candidates=500, seed=0, iterations=10)
    assert plan.shape == (2, L, A)
    torch.testing.assert_close(plan, TARGET.expand(2, L, A), atol=0.05, rtol=0)


def test_cem_beats_random_shooting_at_equal_candidates():
    for seed in range(3):
        cem_error = -quadratic(plan_with("cem", candidates=200, seed=seed)[:, None])  # (B, 1)
        rs_error = -quadratic(plan_with("rs", candidates=200, seed=seed)[:, None])
        assert (cem_error < 0.1 * rs_error).all(), (cem_error, rs_error)


def test_random_shooting_returns_its_best_candidate():
    seen = []

    def recording(actions):
        seen.append(actions)
        return quadratic(actions)

    plan = plan_with("rs", candidates=64, seed=0, objective=recording)
    assert len(seen) == 1  # one iteration, whatever the config says
    best = quadratic(seen[0]).argmax(dim=1)  # (B,)
    torch.testing.assert_close(plan, seen[0][torch.arange(2), best])


def test_nan_returns_are_never_chosen():
    # All returns negative; a NaN mapped to 0 would win. NaN where the first action's first dim > 0.
    def objective(actions):
        returns = quadratic(actions) - 100.0
        return torch.where(actions[..., 0, 0] > 0, torch.full_like(returns, torch.nan), returns)

    for kind in ("rs", "cem"):
        plan = plan_with(kind, candidates=200, seed=1, objective=objective)
        assert (plan[:, 0, 0] <= 0).all(), kind
        assert torch.isfinite(plan).all()


def test_plans_stay_in_the_action_box():
    far = torch.full((L, A), 5.0)  # optimum outside the box: CEM heads for the corner, never past it
    plan = plan_with("cem", candidates=200, seed=0, objective=lambda a: -(a - far).square().sum(dim=(-1, -2)))
    assert (plan <= 1.0).all() and (plan >= -1.0).all()
    assert (plan > 0.6).all()  # elites are clipped samples, so their mean stays a little inside


def test_same_generator_seed_same_plan():
    torch.testing.assert_close(plan_with("cem", 100, seed=3), plan_with("cem", 100, seed=3), atol=0, rtol=0)
