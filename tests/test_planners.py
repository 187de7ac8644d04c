"""iCEM and MPPI beside CEM and random shooting: toy objectives with known optima, the action box, iCEM's
coloured noise, population and memory, MPPI's weights, keep_rows for every kind, the command line, and a
short run of each new planner through both agents (CEM itself: test_planner.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.errors import ConfigError
from worldmodel.planning import CEMPlanner, ICEMPlanner, MPPIPlanner, PlannerConfig, make_planner, sequences_per_call
from worldmodel.planning.icem import population

ROOT = Path(__file__).resolve().parents[1]
A, L = 3, 4
TARGET = torch.tensor([[0.5, -0.3, 0.8], [-0.6, 0.2, 0.0], [0.1, 0.9, -0.9], [0.0, -0.5, 0.4]])  # (L, A) in the box
LOW, HIGH = torch.tensor([-2.0, -2.0, -1.0]), torch.tensor([2.0, 2.0, 3.0])  # wide: TARGET's samples are never clipped
CENTRE, HALF_RANGE = (HIGH + LOW) / 2, (HIGH - LOW) / 2  # (A,): 0, 0, 1 and 2, 2, 2


def quadratic(actions: torch.Tensor, target: torch.Tensor = TARGET) -> torch.Tensor:
    """(B, N, L, A) -> (B, N): maximal (0) at ``target`` (L, A), or (B, 1, L, A) for one target per row."""
    return -(actions - target).square().sum(dim=(-1, -2))


def planner(kind: str, seed: int = 0, low=-torch.ones(A), high=torch.ones(A), **cfg):
    cfg = PlannerConfig(**{"kind": kind, "horizon": L, "candidates": 300, "iterations": 8, "elites": 30, **cfg})
    return make_planner(cfg, low, high, generator=torch.Generator().manual_seed(seed))


def recording(calls: list, objective=quadratic):
    """``objective`` that also keeps each call's candidates (B, N, L, A), in order."""
    return lambda actions: calls.append(actions) or objective(actions)


def best_of(actions: torch.Tensor, count: int, objective=quadratic) -> torch.Tensor:
    """The ``count`` best of ``actions`` (B, N, L, A) under ``objective``, best first: (B, count, L, A)."""
    index = objective(actions).topk(count, dim=1).indices  # (B, count)
    return torch.stack([actions[b, index[b]] for b in range(actions.shape[0])])


def test_make_planner_builds_the_kind_the_config_names():
    kinds = {"rs": CEMPlanner, "cem": CEMPlanner, "icem": ICEMPlanner, "mppi": MPPIPlanner}
    for kind, cls in kinds.items():
        built = planner(kind)
        assert type(built) is cls and built.cfg.kind == kind and built.device == torch.device("cpu")
    # Sequences a call evaluates per env (iCEM's: test_icem_population_decays_...).
    assert [sequences_per_call(planner(kind).cfg) for kind in ("rs", "cem", "mppi")] == [300, 2400, 2400]


# ---- optima and the box ---------------------------------------------------------------------


@pytest.mark.parametrize("kind, tolerance", [("icem", 0.15), ("mppi", 0.05)])
def test_icem_and_mppi_find_the_optimum_of_a_quadratic(kind, tolerance):
    for seed in range(2):
        plan = planner(kind, seed).plan(quadratic, batch_size=2)
        assert plan.shape == (2, L, A)
        torch.testing.assert_close(plan, TARGET.expand(2, L, A), atol=tolerance, rtol=0)


@pytest.mark.parametrize("kind", ["icem", "mppi"])
def test_an_optimum_outside_the_box_puts_the_plan_on_its_edge_never_past_it(kind):
    """MPPI at a temperature that suits these returns (hundreds apart): 0.5 would follow the first best sample."""
    far = torch.tensor([5.0, -5.0, 5.0])  # beyond the corner (1, -1, 1) of the box
    plan = planner(kind, iterations=12, temperature=0.05).plan(lambda a: quadratic(a, far), batch_size=2)  # (B, L, A)
    corner = torch.tensor([1.0, -1.0, 1.0])
    assert (plan <= 1.0).all() and (plan >= -1.0).all()
    torch.testing.assert_close(plan, corner.expand(2, L, A), atol=0.08, rtol=0)


# ---- iCEM -----------------------------------------------------------------------------------


@pytest.mark.parametrize("beta", [0.0, 1.0, 2.0])
def test_icem_noise_has_the_requested_spectrum_slope_and_spread(beta):
    """The first iteration's samples around the box centre, divided by their std (init_std x half-range):
    unit variance per step, and their mean periodogram along the horizon falls as 1/f^beta."""
    horizon, init_std = 64, 0.05  # narrow: nothing is clipped
    calls = []
    icem = planner("icem", horizon=horizon, candidates=1000, elites=10, iterations=1, noise_beta=beta,
                   init_std=init_std, low=LOW, high=HIGH)
    icem.plan(recording(calls, lambda a: a.sum(dim=(-1, -2))), batch_size=1)
    noise = (calls[0][:, :1000] - CENTRE) / (init_std * HALF_RANGE)  # (1, N, L, A)
    torch.testing.assert_close(noise.var(dim=(0, 1, 3)), torch.ones(horizon), atol=0.1, rtol=0)
    power = torch.fft.rfft(noise, dim=2).abs().square().mean(dim=(0, 1, 3))[1:]  # (L/2,) without f = 0
    log_f, log_p = torch.fft.rfftfreq(horizon)[1:].log(), power.log()
    slope = ((log_f - log_f.mean()) * (log_p - log_p.mean())).sum() / (log_f - log_f.mean()).square().sum()
    assert abs(slope.item() + beta) < 0.3, (beta, slope.item())


def test_icem_population_decays_and_kept_elites_and_the_mean_are_evaluated_again():
    """candidates 100, elites 10, keep 0.3 (K = 3), gamma 1.25: iterations draw 100, 80, 64, 51 sequences;
    each after the first also evaluates the previous iteration's best 3, in order, and the last the mean
    (alpha 1: the mean of the previous iteration's 10 elites). The plan is the last iteration's best."""
    calls = []
    icem = planner("icem", candidates=100, elites=10, iterations=4, keep_elites=0.3, population_decay=1.25,
                   low=LOW, high=HIGH)
    plan = icem.plan(recording(calls), batch_size=2)
    drawn = [100, 80, 64, 51]
    assert [population(icem.cfg, i) for i in range(4)] == drawn
    assert [c.shape[1] for c in calls] == [100, 83, 67, 55]
    for i in (1, 2, 3):
        torch.testing.assert_close(calls[i][:, drawn[i] : drawn[i] + 3], best_of(calls[i - 1], 3), rtol=0, atol=0)
    torch.testing.assert_close(calls[3][:, -1], best_of(calls[2], 10).mean(dim=1))
    torch.testing.assert_close(plan, best_of(calls[3], 1)[:, 0], rtol=0, atol=0)
    assert sequences_per_call(icem.cfg) == 100 + 83 + 67 + 55 + 3  # later calls: + the 3 shifted elites


def test_icem_shifts_its_kept_elites_into_the_next_call_but_not_after_reset():
    icem = planner("icem", candidates=100, elites=10, iterations=2, keep_elites=0.3, low=LOW, high=HIGH)
    first, second = [], []
    icem.plan(recording(first), batch_size=2)
    icem.plan(recording(second), batch_size=2)
    assert second[0].shape[1] == 100 + 3  # 100 drawn, then the 3 kept elites one step on
    kept = best_of(first[-1], 3)  # (B, 3, L, A): the best 3 of the last iteration
    torch.testing.assert_close(second[0][:, 100:, :-1], kept[:, :, 1:], rtol=0, atol=0)
    assert not torch.equal(second[0][:, 100:, -1], kept[:, :, -1])  # a fresh last action
    icem.reset()
    after_reset, other_batch = [], []
    icem.plan(recording(after_reset), batch_size=2)
    assert after_reset[0].shape[1] == 100
    icem.plan(recording(other_batch), batch_size=1)  # elites kept for 2 envs do not seed a call for 1
    assert other_batch[0].shape[1] == 100
    no_memory = planner("icem", candidates=100, elites=10, iterations=2, shift_elites=False)
    calls = []
    no_memory.plan(quadratic, batch_size=2)
    no_memory.plan(recording(calls), batch_size=2)
    assert calls[0].shape[1] == 100


# ---- MPPI -----------------------------------------------------------------------------------


def test_mppi_weights_its_elites_by_temperature_and_clamps_the_std():
    """One iteration: a huge temperature refits to the best elite alone (the CEM refit on the best
    candidate), temperature 0 to the plain mean of the elites. The second iteration samples around the
    best elite with the std floor (its spread is 0), min_std x the half-range."""
    for temperature in (1e9, 0.0):
        calls = []
        plan = planner("mppi", iterations=1, temperature=temperature, low=LOW, high=HIGH).plan(
            recording(calls), batch_size=2
        )
        elites = best_of(calls[0], 30)  # (B, J, L, A)
        if temperature:
            torch.testing.assert_close(plan, elites[:, 0], rtol=0, atol=0)
        else:
            torch.testing.assert_close(plan, elites.mean(dim=1))
    calls = []
    mppi = planner("mppi", iterations=2, candidates=4000, temperature=1e9, min_std=0.05, init_std=0.3,
                   low=LOW, high=HIGH)
    mppi.plan(recording(calls), batch_size=2)
    std, mean = torch.std_mean(calls[1], dim=1)  # (B, L, A)
    torch.testing.assert_close(mean, best_of(calls[0], 1)[:, 0], atol=0.01, rtol=0)
    torch.testing.assert_close(std, (0.05 * HALF_RANGE).expand(2, L, A), rtol=0.08, atol=0)


def test_mppi_never_weighs_a_diverged_rollout():
    """NaN returns where the first action's first dim > -0.5, all others negative: 35 elites of 40
    candidates include diverged ones (-inf), which weigh 0 at any temperature, so the mean keeps a[0, 0]
    <= -0.5. A NaN mapped to a number would win (0) or drag that mean up (a weight of its own)."""

    def objective(actions):
        returns = quadratic(actions) - 100.0
        return torch.where(actions[..., 0, 0] > -0.5, torch.full_like(returns, torch.nan), returns)

    for temperature in (0.0, 0.5):
        plan = planner("mppi", candidates=40, elites=35, iterations=1, temperature=temperature).plan(
            objective, batch_size=2
        )
        assert torch.isfinite(plan).all() and (plan[:, 0, 0] <= -0.5).all(), temperature


# ---- keep_rows ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["rs", "cem", "icem", "mppi"])
def test_keep_rows_keeps_the_warm_starts_of_the_rows_going_on_in_that_order(kind):
    """Three envs with their own optimum plan warm; envs 2 and 0 go on (in that order). The next call for 2
    envs starts from their shifted plans (rs keeps nothing and starts from scratch), and iCEM's first
    iteration holds their kept elites."""
    targets = TARGET + torch.tensor([-0.4, 0.0, 0.4])[:, None, None]  # (3, L, A), one optimum per env
    objective = lambda a: quadratic(a, targets[:, None] if a.shape[0] == 3 else targets[[2, 0], None])  # noqa: E731
    plans = planner(kind, low=LOW, high=HIGH, warm_start=True, init="gaussian", init_std=0.05)
    calls, after = [], []
    plans.plan(recording(calls, objective), batch_size=3)
    shifted = plans.first_mean(3)[0][[2, 0]]  # (2, L, A): rows 2 and 0 of the next warm start
    plans.keep_rows(torch.tensor([2, 0]))
    first_mean, warm = plans.first_mean(2)
    assert warm == (kind != "rs")
    if kind == "rs":
        return
    torch.testing.assert_close(first_mean, shifted, rtol=0, atol=0)
    assert (shifted[0, :-1] - shifted[1, :-1]).abs().amax() > 0.2  # rows in the other order would show
    plans.plan(recording(after, objective), batch_size=2)
    drawn = after[0][:, : plans.cfg.candidates]  # (2, N, L, A)
    torch.testing.assert_close(drawn.mean(dim=1), shifted, atol=0.03, rtol=0)
    if kind == "icem":
        kept = best_of(calls[-1], 9, objective)[[2, 0]]  # (2, K, L, A), K = int(0.3 x 30)
        torch.testing.assert_close(after[0][:, 300:, :-1], kept[:, :, 1:], rtol=0, atol=0)


# ---- config and command line ----------------------------------------------------------------


@pytest.mark.parametrize(
    "fields, words",
    [
        ({"kind": "icem", "candidates": 30, "elites": 20}, "candidates >= 2 x planner.elites"),
        ({"kind": "icem", "compile": True}, "planner.shift_elites=false"),
        ({"min_std": 0.5, "max_std": 0.1}, "min_std <= max_std"),
        ({"population_decay": 0.5}, "planner.population_decay must be >= 1"),
        ({"keep_elites": 1.5}, "planner.keep_elites must be in [0, 1]"),
        ({"temperature": -1.0}, "planner.temperature must be >= 0"),
        ({"noise_beta": -1.0}, "planner.noise_beta must be >= 0"),
    ],
)
def test_bad_planner_settings_are_config_errors(fields, words):
    with pytest.raises(ConfigError, match=words.replace("[", r"\[").replace("]", r"\]")):
        PlannerConfig(**{"candidates": 100, "elites": 10, **fields})
    PlannerConfig(kind="icem", compile=True, shift_elites=False)  # compiles with no memory between calls


def test_planner_flag_takes_the_four_kinds_and_refuses_others(capsys):
    from worldmodel.agents.state_agent import StateAgentConfig
    from worldmodel.cli import build_parser, flag_overrides, parse_with_overrides
    from worldmodel.config import load_config

    for kind in ("rs", "cem", "icem", "mppi"):
        args = parse_with_overrides(build_parser(), ["--planner", kind])
        assert load_config(StateAgentConfig, None, flag_overrides(args)).planner.kind == kind
    with pytest.raises(SystemExit) as exit_info:
        parse_with_overrides(build_parser(), ["--planner", "pso"])
    assert exit_info.value.code == 2 and "invalid choice: 'pso'" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="planner.kind must be one of 'rs', 'cem', 'icem', 'mppi'; got 'pso'"):
        load_config(StateAgentConfig, None, ["planner.kind=pso"])


# ---- through the agents ---------------------------------------------------------------------


def spy_on_planner(run) -> list[list[int]]:
    """Per planner call, the number of candidates of each of its iterations."""
    sizes: list[list[int]] = []
    plan = run.planner.plan

    def spying_plan(objective, batch_size):
        sizes.append([])
        return plan(lambda actions: sizes[-1].append(actions.shape[1]) or objective(actions), batch_size)

    run.planner.plan = spying_plan
    return sizes


@pytest.mark.parametrize("kind", ["icem", "mppi"])
def test_state_agent_plans_with_the_configured_planner(kind):
    """configs/state_smoke.yaml (50 candidates, 5 elites, 2 iterations): iCEM's calls evaluate 50 then 40 +
    1 kept + the mean, and from the second step 1 shifted elite more; MPPI's 50 and 50."""
    from worldmodel.agents.state_agent import StateAgentConfig, collect_mpc, prepare
    from worldmodel.config import load_config

    overrides = [f"planner.kind={kind}", "env.episode_length=3", "planner.warm_start=true"]
    run = prepare(load_config(StateAgentConfig, ROOT / "configs" / "state_smoke.yaml", overrides), None)
    try:
        assert type(run.planner) is {"icem": ICEMPlanner, "mppi": MPPIPlanner}[kind]
        sizes = spy_on_planner(run)
        episodes = collect_mpc(run, 2, "test")
    finally:
        run.close()
    assert episodes.actions.shape == (6, 6) and episodes.lengths.tolist() == [3, 3]
    assert np.isfinite(episodes.actions).all()
    assert np.abs(episodes.actions).max() <= 1.0
    expected = [[50, 42], [51, 42], [51, 42]] if kind == "icem" else [[50, 50]] * 3
    assert sizes == expected


@pytest.mark.parametrize("kind", ["mppi", "icem"])
def test_pixel_agent_plans_with_the_configured_planner(kind):
    """configs/pixels_smoke.yaml (32 candidates, 4 elites, 2 iterations): one evaluation episode of a few
    steps plans with the configured kind (iCEM: 32, then 25 + 1 kept + the mean; MPPI: 32 and 32)."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig, evaluate, prepare
    from worldmodel.config import load_config

    overrides = [f"planner.kind={kind}", "env.max_episode_steps=24", "train.eval_episodes=1", "logger=none"]
    run = prepare(load_config(PixelAgentConfig, ROOT / "configs" / "pixels_smoke.yaml", overrides), None)
    try:
        assert type(run.planner) is {"icem": ICEMPlanner, "mppi": MPPIPlanner}[kind]
        sizes = spy_on_planner(run)
        score, frames = evaluate(run)
    finally:
        run.close()
    assert np.isfinite(score) and len(sizes) == len(frames) - 1 >= 2
    first, later = ([32, 27], [33, 27]) if kind == "icem" else ([32, 32], [32, 32])
    assert sizes == [first] + [later] * (len(sizes) - 1)
