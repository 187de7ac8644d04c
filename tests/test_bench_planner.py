"""The planner benchmark's pieces: the naive reference computes what the library computes, the flop
count is the homework's, and a missing GPU is one clear line."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from worldmodel.models.ensemble import EnsembleMLP
from worldmodel.planning import PlannerConfig

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_planner.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_planner", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_naive_members_compute_the_ensemble(bench):
    torch.manual_seed(0)
    mlp = EnsembleMLP(23, 18, ensemble_size=5, hidden_size=32)
    x = torch.randn(5, 10, 23)
    with torch.no_grad():
        expected = mlp(x)
        got = torch.stack([member(x[e]) for e, member in enumerate(bench.naive_members(mlp))])
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)


def test_flop_count_is_the_homework_workload(bench):
    mlp = EnsembleMLP(23, 18, ensemble_size=5, hidden_size=250, num_layers=2)
    per_sample = 2 * (23 * 250 + 250 * 250 + 250 * 18)
    expected = per_sample * 5 * 1000 * 2 * 15 * 4  # members, candidates, envs, horizon, iterations
    assert bench.ensemble_flops_per_plan(mlp, bench.STATE_PLANNER, num_envs=2) == expected


def small_model(bench):
    """A DynamicsEnsemble with fitted, non-trivial normalisers, at test sizes."""
    torch.manual_seed(0)
    cfg = bench.EnsembleConfig(ensemble_size=3, hidden_size=16, num_layers=2)
    model = bench.DynamicsEnsemble(cfg, obs_size=18, action_size=6, model_input_dims=tuple(range(1, 18)))
    obs, actions = 2 * torch.randn(64, 18) + 1, torch.rand(64, 6) * 2 - 1
    model.fit_normalizers(obs, actions, obs + 0.3 * torch.randn(64, 18))
    return model.eval()


def test_naive_returns_equal_the_library_objective(bench):
    model = small_model(bench)
    members = bench.naive_members(model.mlp)
    obs = torch.randn(2, 18)  # (B, S)
    actions = torch.rand(2, 7, 4, 6) * 2 - 1  # (B, N, L, A)
    expected = model.imagine_returns(obs, actions, bench.half_cheetah_reward)  # (B, N)
    reward = bench.half_cheetah_reward
    naive = torch.stack([bench.naive_returns(model, members, obs[b], actions[b], reward) for b in range(2)])
    torch.testing.assert_close(naive, expected, rtol=1e-4, atol=1e-3)


def test_naive_plan_shape_and_box(bench):
    model = small_model(bench)
    cfg = PlannerConfig(horizon=3, candidates=20, iterations=2, elites=5)
    low, high = -torch.ones(6), torch.ones(6)
    members, obs = bench.naive_members(model.mlp), torch.randn(2, 18)
    plan = bench.naive_plan(model, members, obs, bench.half_cheetah_reward, cfg, low, high)
    assert plan.shape == (2, 3, 6)
    assert torch.all(plan >= low) and torch.all(plan <= high)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message shown when there is no GPU")
def test_cuda_without_gpu_is_one_clear_line():
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--device", "cuda"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode != 0
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "cuda" in result.stderr and "no GPU" in result.stderr
