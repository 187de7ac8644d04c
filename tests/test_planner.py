"""CEM and random shooting on toy objectives with known optima, and the Gaussians they sample from
(init_std, alpha, warm starts) checked by their values (no model involved)."""

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


def test_random_shooting_finds_a_non_centre_optimum():
    # Only the first action counts: best of 2000 uniform draws in a 3-d box lands near TARGET[0].
    plan = plan_with("rs", candidates=2000, seed=0, objective=lambda a: -(a[..., 0, :] - TARGET[0]).square().sum(-1))
    torch.testing.assert_close(plan[:, 0], TARGET[0].expand(2, A), atol=0.25, rtol=0)


# ---- the sampling distribution: init_std, alpha, warm starts ----------------------------------

LOW, HIGH = torch.tensor([-2.0, -2.0, -1.0]), torch.tensor([2.0, 2.0, 3.0])  # wide: TARGET's samples are never clipped
CENTRE, HALF_RANGE = (HIGH + LOW) / 2, (HIGH - LOW) / 2  # (A,): 0, 0, 1 and 2, 2, 2


def recording(samples: list, objective=quadratic):
    """``objective`` that also keeps every iteration's candidates (B, N, L, A)."""
    return lambda actions: samples.append(actions) or objective(actions)


def planner_in_wide_box(seed: int = 0, **cfg) -> CEMPlanner:
    cfg = PlannerConfig(**{"kind": "cem", "horizon": L, "candidates": 4000, "elites": 40, "init": "gaussian", **cfg})
    return CEMPlanner(cfg, low=LOW, high=HIGH, generator=torch.Generator().manual_seed(seed))


def test_init_std_is_the_first_gaussians_spread_as_a_fraction_of_the_half_range():
    for init_std in (0.1, 0.3):
        samples = []
        planner_in_wide_box(iterations=1, init_std=init_std).plan(recording(samples), batch_size=2)
        std, mean = torch.std_mean(samples[0], dim=1)  # (B, L, A) each, over 4000 candidates
        torch.testing.assert_close(mean, CENTRE.expand(2, L, A), atol=0.05, rtol=0)
        torch.testing.assert_close(std, (init_std * HALF_RANGE).expand(2, L, A), rtol=0.08, atol=0)


def elite_stats(actions: torch.Tensor, elites: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The quadratic's ``elites`` best of ``actions`` (B, N, L, A) -> their std and mean (B, L, A)."""
    best = quadratic(actions).topk(elites, dim=1).indices  # (B, J)
    chosen = torch.stack([actions[b, best[b]] for b in range(actions.shape[0])])  # (B, J, L, A)
    return torch.std_mean(chosen, dim=1, correction=0)


def test_alpha_below_one_mixes_the_elite_statistics_with_the_previous_ones():
    """alpha = 0.3: each refit is 0.3 x the elites' mean and std + 0.7 x the previous Gaussian's. Checked
    on the second iteration's samples (their spread) and on the returned plan (the mean of the last refit)."""
    alpha, init_std = 0.3, 0.5
    samples = []
    plan = planner_in_wide_box(iterations=2, alpha=alpha, init_std=init_std).plan(recording(samples), batch_size=2)
    elite_std, elite_mean = elite_stats(samples[0], 40)  # (B, L, A) each
    mean1 = alpha * elite_mean + (1 - alpha) * CENTRE  # (B, L, A)
    std1 = alpha * elite_std + (1 - alpha) * init_std * HALF_RANGE
    std, mean = torch.std_mean(samples[1], dim=1)  # (B, L, A): the second iteration's Gaussian, never clipped here
    torch.testing.assert_close(mean, mean1, atol=0.05, rtol=0)
    torch.testing.assert_close(std, std1, rtol=0.08, atol=0)
    assert ((std1 - elite_std).abs() > 0.15 * std1).all()  # the check above tells a mix from the elites' std alone
    elite_std, elite_mean = elite_stats(samples[1], 40)
    torch.testing.assert_close(plan, alpha * elite_mean + (1 - alpha) * mean1)


def test_warm_start_begins_at_the_previous_plan_shifted_by_one_step():
    """The second call's first Gaussian is centred on the first plan's steps 1..L-1, then the box centre,
    with the configured init_std spread (a narrow one here, so the sample means show the centre)."""
    planner = planner_in_wide_box(iterations=3, init="uniform", init_std=0.02, warm_start=True)
    first = planner.plan(quadratic, batch_size=2)  # (B, L, A), close to TARGET
    samples = []
    planner.plan(recording(samples), batch_size=2)
    shifted = torch.cat([first[:, 1:], CENTRE.expand(2, 1, A)], dim=1)  # (B, L, A)
    std, mean = torch.std_mean(samples[0], dim=1)  # (B, L, A)
    torch.testing.assert_close(mean, shifted, atol=0.005, rtol=0)
    torch.testing.assert_close(std, (0.02 * HALF_RANGE).expand(2, L, A), rtol=0.08, atol=0)
    assert ((first[:, 1:] - first[:, :-1]).abs().amax(dim=(1, 2)) > 0.5).all()  # a shift by 0 or 2 would show


def first_iteration_is_uniform(planner: CEMPlanner, batch_size: int) -> bool:
    """Whether a plan call starts from scratch (init=uniform): its first samples fill the box, std range/sqrt(12)."""
    samples = []
    planner.plan(recording(samples), batch_size=batch_size)
    std = samples[0].std(dim=1)  # (B, L, A)
    return bool(torch.allclose(std, (HALF_RANGE / 3**0.5).expand_as(std), rtol=0.08))


def test_warm_start_is_forgotten_on_reset_and_on_a_batch_size_change():
    planner = planner_in_wide_box(iterations=2, init="uniform", init_std=0.05, warm_start=True)
    assert first_iteration_is_uniform(planner, batch_size=2)
    assert not first_iteration_is_uniform(planner, batch_size=2)  # warm: narrow samples around the previous plan
    planner.reset()
    assert first_iteration_is_uniform(planner, batch_size=2)
    # No stale plan of another batch size, larger (it would fail to broadcast) or smaller (it would broadcast).
    assert first_iteration_is_uniform(planner, batch_size=1)
    assert first_iteration_is_uniform(planner, batch_size=3)
    assert not first_iteration_is_uniform(planner, batch_size=3)
    # Without warm_start every call starts from scratch.
    cold = planner_in_wide_box(iterations=2, init="uniform", init_std=0.05)
    assert first_iteration_is_uniform(cold, 2) and first_iteration_is_uniform(cold, 2)
