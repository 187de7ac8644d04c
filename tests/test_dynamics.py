"""The dynamics ensemble: shapes, independent members, fitting, imagined returns; the transition buffer."""

from __future__ import annotations

import pytest
import torch

from worldmodel.data.transitions import TransitionBuffer
from worldmodel.envs.rewards import half_cheetah_reward
from worldmodel.models.dynamics import DynamicsEnsemble, EnsembleConfig, contiguous_spans

S, A = 18, 6
SEEN = tuple(range(1, S))  # HalfCheetah-v5: x hidden from the model


def make_model(E: int = 3, delta_norm: bool = True, hidden: int = 32) -> DynamicsEnsemble:
    torch.manual_seed(0)
    cfg = EnsembleConfig(ensemble_size=E, hidden_size=hidden, num_layers=2, delta_norm=delta_norm)
    return DynamicsEnsemble(cfg, obs_size=S, action_size=A, model_input_dims=SEEN)


def toy_data(n: int = 2000, seed: int = 0):
    """A smooth known system: next = obs + 0.1 * tanh(W [obs[1:], a]), x moving with the velocity dim."""
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(n, S, generator=g)
    obs[:, 0] = 100 * torch.rand(n, generator=g)  # absolute position, large and irrelevant
    actions = torch.rand(n, A, generator=g) * 2 - 1
    W = torch.randn(S - 1 + A, S, generator=torch.Generator().manual_seed(123)) / 5
    next_obs = obs + 0.1 * torch.tanh(torch.cat([obs[:, 1:], actions], -1) @ W)
    return obs, actions, next_obs


@pytest.mark.parametrize("E,B", [(1, 1), (3, 7), (5, 64)])
def test_shapes(E, B):
    model = make_model(E)
    obs, actions, next_obs = torch.randn(E, B, S), torch.rand(E, B, A), torch.randn(E, B, S)
    total, metrics = model.loss(obs, actions, next_obs)
    assert total.shape == () and set(metrics) >= {"model/loss"}
    assert model.member_losses(obs, actions, next_obs)["dynamics"].shape == (E,)
    assert model.predict(obs, actions).shape == (E, B, S)


@pytest.mark.parametrize("B,N,L", [(1, 4, 1), (3, 5, 4)])
def test_imagine_returns_shape_and_agrees_with_predict(B, N, L):
    model = make_model(3)
    obs, actions, next_obs = toy_data(500)
    model.fit_normalizers(obs, actions, next_obs)
    start = torch.randn(B, S)
    plans = torch.rand(B, N, L, A) * 2 - 1
    returns = model.imagine_returns(start, plans, half_cheetah_reward)
    assert returns.shape == (B, N)

    # The same rollout step by step with predict, storing everything: must give the same numbers.
    E = model.ensemble_size
    state = start[:, None].expand(B, N, S).reshape(1, B * N, S).expand(E, -1, -1)  # (E, B*N, S)
    expected = torch.zeros(E, B * N)
    for t in range(L):
        action = plans[:, :, t].reshape(1, B * N, A).expand(E, -1, -1)
        next_state = model.predict(state, action)
        expected += half_cheetah_reward(state, action, next_state)
        state = next_state
    torch.testing.assert_close(returns, expected.mean(0).view(B, N), atol=1e-4, rtol=1e-4)


def test_a_step_on_member_0_leaves_the_others_unchanged():
    model = make_model(3)
    obs, actions, next_obs = torch.randn(3, 16, S), torch.rand(3, 16, A), torch.randn(3, 16, S)
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.member_losses(obs, actions, next_obs)["dynamics"][0].backward()
    optimizer.step()
    for name, p in model.named_parameters():
        assert not torch.equal(p[0], before[name][0]), name
        torch.testing.assert_close(p[1:], before[name][1:], atol=0, rtol=0)


def test_members_differ_and_sample_their_own_batches():
    model = make_model(4)
    weights = model.mlp.layers[0].weight  # (E, in, out)
    assert not torch.equal(weights[0], weights[1])  # independently initialised

    buffer = TransitionBuffer(S, A)
    obs, actions, next_obs = toy_data(1000)
    buffer.add(obs, actions, next_obs, torch.zeros(1000))
    batch = buffer.sample(4, 32, torch.Generator().manual_seed(0))
    assert batch["obs"].shape == (4, 32, S) and batch["actions"].shape == (4, 32, A) and batch["rewards"].shape == (4, 32)
    assert not torch.equal(batch["obs"][0], batch["obs"][1])
    # the rows of a member's batch are real transitions: next_obs belongs to obs
    row = (obs == batch["obs"][2, 5]).all(-1).nonzero()[0, 0]
    torch.testing.assert_close(batch["next_obs"][2, 5], next_obs[row])


def test_buffer_grows_and_round_trips():
    buffer = TransitionBuffer(S, A, capacity=4)
    obs, actions, next_obs = toy_data(10)
    buffer.add(obs[:3], actions[:3], next_obs[:3], torch.arange(3.0))
    buffer.add(obs[3:].numpy(), actions[3:].numpy(), next_obs[3:].numpy(), torch.arange(3.0, 10.0).numpy())
    assert len(buffer) == 10
    torch.testing.assert_close(buffer.all()["obs"], obs)
    other = TransitionBuffer(S, A)
    other.load_state_dict(buffer.state_dict())
    torch.testing.assert_close(other.all()["rewards"], torch.arange(10.0))


# seed 000 found normalised deltas fit better than differences of normalised states: so does this toy
@pytest.mark.parametrize("delta_norm,tolerance", [(True, 0.1), (False, 0.5)])
def test_fits_a_tiny_dataset(delta_norm, tolerance):
    model = make_model(2, delta_norm=delta_norm, hidden=64)
    obs, actions, next_obs = toy_data(2000)
    model.fit_normalizers(obs, actions, next_obs)
    buffer = TransitionBuffer(S, A)
    buffer.add(obs, actions, next_obs, torch.zeros(len(obs)))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    E = model.ensemble_size
    first = None
    for step in range(300):
        batch = buffer.sample(E, 128, g)
        total, metrics = model.loss(batch["obs"], batch["actions"], batch["next_obs"])
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
        first = first if first is not None else float(metrics["model/loss"])
    assert float(metrics["model/loss"]) < 0.2 * first
    # unnormalised next-state error on held-out transitions, far below the size of the deltas
    test_obs, test_actions, test_next = toy_data(500, seed=1)
    pred = model.predict(test_obs.expand(E, -1, -1), test_actions.expand(E, -1, -1))
    error = (pred - test_next).square().mean()
    delta_size = (test_next - test_obs).square().mean()
    assert error < tolerance * delta_size, (float(error), float(delta_size))


def test_contiguous_spans():
    assert contiguous_spans(tuple(range(1, 18))) == [(0, 1, 17)]
    assert contiguous_spans(tuple(i for i in range(21) if i not in (0, 18))) == [(0, 1, 17), (17, 19, 2)]


def test_absolute_position_is_not_a_model_input():
    model = make_model(2)
    obs, actions, next_obs = toy_data(200)
    model.fit_normalizers(obs, actions, next_obs)
    shifted = obs.clone()
    shifted[:, 0] += 1000.0
    delta = model.predict(obs.expand(2, -1, -1), actions.expand(2, -1, -1)) - obs
    delta_shifted = model.predict(shifted.expand(2, -1, -1), actions.expand(2, -1, -1)) - shifted
    torch.testing.assert_close(delta, delta_shifted, atol=1e-3, rtol=0)


def test_cpu_chunks_and_bf16_planning_agree_with_one_batch(monkeypatch):
    import dataclasses

    import worldmodel.cpu

    torch.manual_seed(0)
    model = DynamicsEnsemble(
        EnsembleConfig(ensemble_size=3, hidden_size=32), obs_size=18, action_size=6, model_input_dims=tuple(range(1, 18))
    )
    obs, actions = torch.randn(3, 18), torch.rand(3, 70, 5, 6) * 2 - 1  # (B, S), (B, N, L, A)
    whole = model.imagine_returns(obs, actions, half_cheetah_reward)  # (B, N): one chunk of 210 rows
    monkeypatch.setattr(worldmodel.cpu, "CPU_CHUNK_ROWS", 64)  # 4 chunks, the last one short
    chunked = model.imagine_returns(obs, actions, half_cheetah_reward)
    torch.testing.assert_close(chunked, whole)
    model.plan_dtype = "bfloat16"
    low = model.imagine_returns(obs, actions, half_cheetah_reward)
    assert low.dtype == torch.float32
    assert (low - whole).abs().max() < 0.05 * whole.abs().mean()  # bf16 matmuls, float32 states and sums
    best = set(whole.topk(10, dim=1).indices.flatten().tolist())
    assert len(best & set(low.topk(10, dim=1).indices.flatten().tolist())) >= 7  # much the same elites
