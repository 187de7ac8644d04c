"""``model.value``: the TD(lambda) targets by hand, the value head learning a toy problem, the planner's objective
with the value against the reference modules, and a world-model step that the value leaves untouched."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models.latent_planning import _rollout_returns, _rollout_returns_stacked, _Weights, imagined_returns
from worldmodel.models.rssm import RSSMState
from worldmodel.models.value import LatentValue, lambda_returns
from worldmodel.models.world_model import WorldModel, WorldModelConfig

pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py

TINY = dict(belief_size=12, state_size=5, hidden_size=16, embedding_size=32, cnn_depth=4)


def test_lambda_returns_by_hand_and_cut_at_a_new_episode():
    reward = torch.tensor([[9.0, 1.0, 2.0, 3.0]])  # r_0 (arriving at step 0) never enters step 0's target
    value = torch.tensor([[10.0, 20.0, 30.0, 40.0]])
    is_first = torch.zeros(1, 4, dtype=torch.bool)
    g, lam = 0.5, 0.5
    got = lambda_returns(reward, value, is_first, g, lam)
    g2 = 3.0 + g * 40.0  # G_2 = r_3 + g * v_3 (G_3 = v_3)
    g1 = 2.0 + g * ((1 - lam) * 30.0 + lam * g2)
    g0 = 1.0 + g * ((1 - lam) * 20.0 + lam * g1)
    torch.testing.assert_close(got, torch.tensor([[g0, g1, g2]]))
    # lam = 0: one-step targets; lam = 1 and discount 1: the rewards to the chunk's end plus its last value.
    torch.testing.assert_close(lambda_returns(reward, value, is_first, g, 0.0), reward[:, 1:] + g * value[:, 1:])
    torch.testing.assert_close(lambda_returns(reward, value, is_first, 1.0, 1.0), torch.tensor([[46.0, 45.0, 43.0]]))

    is_first[0, 2] = True  # step 2 starts a new episode: step 1's target is its own value, step 0 bootstraps on it
    cut = lambda_returns(reward, value, is_first, g, lam)
    assert cut[0, 1] == value[0, 1] and cut[0, 2] == g2
    assert cut[0, 0].item() == pytest.approx(1.0 + g * ((1 - lam) * 20.0 + lam * 20.0))


def test_the_value_head_learns_the_discounted_return_of_a_toy_chain():
    """Chunks of two kinds of states (h's first entry +1 or -1) that earn a reward of 1 or 0 each step:
    the values converge to 1 / (1 - discount) and 0."""
    torch.manual_seed(0)
    value = LatentValue(belief_size=4, state_size=2, hidden_size=32, discount=0.5, lam=0.8, learning_rate=3e-3)
    B, T = 32, 8
    for _ in range(400):
        sign = torch.randint(0, 2, (B, 1, 1)).float() * 2 - 1  # (B, 1, 1)
        h = torch.cat([sign.expand(B, T, 1), torch.randn(B, T, 3) * 0.1], dim=-1)  # (B, T, 4)
        z = torch.randn(B, T, 2) * 0.1
        reward = (sign[..., 0] > 0).float().expand(B, T)  # (B, T)
        loss, metrics = value.loss(h, z, reward, torch.zeros(B, T, dtype=torch.bool))
        loss.backward()
        value.step()
    with torch.no_grad():
        good = value(torch.tensor([[1.0, 0, 0, 0]]), torch.zeros(1, 2))
        bad = value(torch.tensor([[-1.0, 0, 0, 0]]), torch.zeros(1, 2))
    assert abs(good.item() - 2.0) < 0.1 and abs(bad.item()) < 0.1, (good, bad)
    assert metrics["value_loss"] < 0.01


@torch.no_grad()
def test_the_planning_objective_adds_the_discounted_value_of_the_last_imagined_state():
    """Every rollout path's last (h, z) is the reference ``imagine``'s, and ``imagine_returns`` with ``model.value``
    is the summed rewards plus discount^L times the value head's forward there."""
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(**TINY, value=True, discount=0.9), action_size=3).eval()
    with torch.no_grad():
        for p in model.value.parameters():
            p.copy_(torch.randn(p.shape))  # values of order 1 that differ by state, not the near-zero init
    B, N, L = 2, 3, 4
    start = RSSMState(h=torch.randn(B, 12), z=torch.randn(B, 5))
    actions = torch.rand(B, N, L, 3) * 2 - 1
    rows = start.map(lambda x: x.repeat_interleave(N, dim=0))  # (B*N)
    imagined = model.imagine(rows, actions.reshape(B * N, L, 3))  # (B*N, L)
    last_h, last_z = imagined.h[:, -1], imagined.z[:, -1]
    rewards = model.reward(imagined.h, imagined.z).sum(dim=1)  # (B*N,)
    values = model.value(last_h, last_z)
    assert values.abs().max() > 0.5 and values.std() > 0.1
    expected = (rewards + 0.9**L * values).reshape(B, N)
    torch.testing.assert_close(model.imagine_returns(start, actions), expected, rtol=1e-5, atol=1e-5)
    without = imagined_returns(model.rssm, model.reward_head, start, actions)
    torch.testing.assert_close(without, rewards.reshape(B, N), rtol=1e-5, atol=1e-5)
    weights, steps = _Weights(model.rssm, model.reward_head), actions.reshape(B * N, L, 3).transpose(0, 1)
    for rollout in (_rollout_returns, _rollout_returns_stacked):
        _, h, z = rollout(weights, rows.h, rows.z, steps, False, None)
        torch.testing.assert_close(h, last_h, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(z, last_z, rtol=1e-5, atol=1e-5)


def random_batch(B: int, T: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (B, T, 3, 64, 64), dtype=torch.uint8, generator=g),
        "action": torch.rand(B, T, 3, generator=g) * 2 - 1,
        "reward": torch.rand(B, T, generator=g),
        "is_first": is_first,
    }


def test_a_training_step_with_the_value_moves_the_world_model_as_one_without_it_and_checkpoints_its_optimizer():
    """The value learns from detached states with its own optimizer: the world model's weights after a step are
    the same with and without it; the value head's change; its Adam state survives a checkpoint."""
    models = {}
    for value in (False, True):
        torch.manual_seed(0)
        models[value] = WorldModel(WorldModelConfig(**TINY, value=value, train_dtype="float32"), action_size=3)
    before = {k: v.clone() for k, v in models[True].value.state_dict().items()}
    batch = random_batch(2, 6)
    metrics = {}
    for value, model in models.items():
        torch.manual_seed(1)
        metrics[value] = model.train_step(batch)
    world = models[False].state_dict()
    with_value = models[True].state_dict()
    assert set(with_value) - set(world) == {f"value.{k}" for k in before}
    for key, weight in world.items():
        torch.testing.assert_close(with_value[key], weight, rtol=0, atol=0, msg=key)
    assert metrics[True]["total_loss"] == metrics[False]["total_loss"]
    assert {"value_loss", "value_mean", "value_grad_norm"} <= set(metrics[True])
    assert any(not torch.equal(before[k], v) for k, v in models[True].value.state_dict().items())

    torch.manual_seed(0)
    restored = WorldModel(WorldModelConfig(**TINY, value=True, train_dtype="float32"), action_size=3)
    restored.load_checkpoint_state(models[True].checkpoint_state())
    saved, loaded = models[True].value.optimizer.state_dict(), restored.value.optimizer.state_dict()
    assert saved["state"].keys() == loaded["state"].keys() and len(saved["state"]) > 0
    for key in saved["state"]:
        torch.testing.assert_close(loaded["state"][key]["exp_avg"], saved["state"][key]["exp_avg"])
