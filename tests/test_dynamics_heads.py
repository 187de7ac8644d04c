"""The ensemble's learned reward and termination heads, and imagined rollouts that end at termination."""

from __future__ import annotations

import pytest
import torch

from worldmodel.models.dynamics import DynamicsEnsemble, EnsembleConfig

S, A, H = 2, 1, 4  # state (x, v), one action, hidden width


def counting_model(learn_reward: bool, learn_termination: bool, termination_penalty: float = 0.0) -> DynamicsEnsemble:
    """A hand-set ensemble on (x, v): x' = x + 1; the learned reward is x (the current state's), the learned
    termination logit 10 (x - 2.5), so a rollout from x = 0 terminates on the step taken from x = 3."""
    cfg = EnsembleConfig(ensemble_size=2, hidden_size=H, num_layers=2, termination_penalty=termination_penalty)
    model = DynamicsEnsemble(
        cfg, obs_size=S, action_size=A, model_input_dims=(0, 1), learn_reward=learn_reward,
        learn_termination=learn_termination,
    )
    first, second, last = model.mlp.layers
    with torch.no_grad():
        for layer in model.mlp.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[:, 0, 0] = 1.0  # h0 = relu(x)
        second.weight[:, 0, 0] = 1.0  # h0 again
        last.bias[:, 0, 0] = 1.0  # delta x = 1 (the normalisers are the identity until fitted)
        if learn_reward:
            last.weight[:, 0, model.reward_index] = 1.0  # reward = x
        if learn_termination:
            last.weight[:, 0, model.termination_index] = 10.0
            last.bias[:, 0, model.termination_index] = -25.0
    return model


def next_x_reward(obs, action, next_obs):
    return next_obs[..., 0]


def reaches_three(obs, action, next_obs):
    return next_obs[..., 0] >= 3


def rollout(model: DynamicsEnsemble, L: int, reward_fn=None, termination_fn=None) -> torch.Tensor:
    start = torch.zeros(1, S)  # (B, S)
    actions = torch.zeros(1, 3, L, A)  # (B, N, L, A)
    return model.imagine_returns(start, actions, reward_fn, termination_fn)  # (B, N)


def test_known_termination_stops_the_return_after_the_terminating_step() -> None:
    model = counting_model(False, False)
    # rewards x' = 1, 2, 3, 4, 5, 6: the step into x = 3 terminates, its reward counts, none after it.
    torch.testing.assert_close(rollout(model, 6, next_x_reward), torch.full((1, 3), 21.0))
    torch.testing.assert_close(rollout(model, 6, next_x_reward, reaches_three), torch.full((1, 3), 6.0))
    torch.testing.assert_close(rollout(model, 2, next_x_reward, reaches_three), torch.full((1, 3), 3.0))


def test_termination_penalty_is_paid_once_at_the_terminating_step() -> None:
    model = counting_model(False, False, termination_penalty=100.0)
    # 1 + 2 + 3, minus the penalty once (not again on the steps after the end); no end within 2 steps: no penalty.
    torch.testing.assert_close(rollout(model, 6, next_x_reward, reaches_three), torch.full((1, 3), 6.0 - 100.0))
    torch.testing.assert_close(rollout(model, 2, next_x_reward, reaches_three), torch.full((1, 3), 3.0))
    torch.testing.assert_close(rollout(model, 6, next_x_reward), torch.full((1, 3), 21.0))  # never ends: none


def test_learned_reward_and_termination_heads_drive_the_rollout() -> None:
    # learned reward x: 0, 1, 2, 3, 4, 5; the learned head ends the rollout on the step taken from x = 3.
    torch.testing.assert_close(rollout(counting_model(True, False), 6), torch.full((1, 3), 15.0))
    torch.testing.assert_close(rollout(counting_model(True, True), 6), torch.full((1, 3), 6.0))
    # A known termination overrides the learned head (it ends one step earlier, on x' = 3).
    torch.testing.assert_close(rollout(counting_model(True, True), 6, None, reaches_three), torch.full((1, 3), 3.0))


def test_a_state_that_diverges_after_the_end_adds_nothing() -> None:
    model = counting_model(False, False)
    exploding = lambda obs, action, next_obs: torch.where(next_obs[..., 0] > 3, torch.inf, next_obs[..., 0])  # noqa: E731
    torch.testing.assert_close(rollout(model, 6, exploding, reaches_three), torch.full((1, 3), 6.0))


def toy_problem(n: int, seed: int):
    """reward = x * a + v; terminated when v > 1 (about one transition in six)."""
    g = torch.Generator().manual_seed(seed)
    obs, actions = torch.randn(n, S, generator=g), torch.rand(n, A, generator=g) * 2 - 1
    next_obs = obs + 0.1 * actions
    rewards = obs[:, 0] * actions[:, 0] + obs[:, 1]
    return obs, actions, next_obs, rewards, (obs[:, 1] > 1.0).float()


def test_heads_train_on_a_toy_problem_and_predict_it() -> None:
    torch.manual_seed(0)
    cfg = EnsembleConfig(ensemble_size=2, hidden_size=64, num_layers=2)
    model = DynamicsEnsemble(
        cfg, obs_size=S, action_size=A, model_input_dims=(0, 1), learn_reward=True, learn_termination=True
    )
    obs, actions, next_obs, rewards, terminated = toy_problem(4000, 0)
    model.fit_normalizers(obs, actions, next_obs, rewards)
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(600):
        index = torch.randint(len(obs), (2, 256), generator=g)  # (E, B)
        total, metrics = model.loss(obs[index], actions[index], next_obs[index], rewards[index], terminated[index])
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    assert set(metrics) >= {"model/loss", "model/reward_loss", "model/termination_loss"}

    obs, actions, next_obs, rewards, terminated = toy_problem(1000, 2)  # held out
    predicted, reward, p_end = model.predict_heads(obs.expand(2, -1, -1), actions.expand(2, -1, -1))
    assert (reward - rewards).square().mean() < 0.05 * rewards.var()
    assert ((p_end > 0.5).float() == terminated).float().mean() > 0.95
    assert (predicted - next_obs).square().mean() < 1e-3


@pytest.mark.parametrize("reward,termination", [(False, False), (True, False), (True, True), (False, True)])
def test_heads_are_extra_outputs_of_each_member(reward: bool, termination: bool) -> None:
    cfg = EnsembleConfig(ensemble_size=3, hidden_size=8, num_layers=1)
    model = DynamicsEnsemble(
        cfg, obs_size=S, action_size=A, model_input_dims=(0, 1), learn_reward=reward, learn_termination=termination
    )
    assert model.mlp.out_size == S + reward + termination
    batch = torch.randn(3, 5, S), torch.rand(3, 5, A), torch.randn(3, 5, S), torch.randn(3, 5), torch.zeros(3, 5)
    model.fit_normalizers(*(part.reshape(15, -1) for part in batch[:3]), batch[3].reshape(15))
    losses = model.member_losses(*batch)
    heads = {"reward": reward, "termination": termination}
    assert set(losses) == {"dynamics"} | {head for head, learned in heads.items() if learned}
    assert all(loss.shape == (3,) for loss in losses.values())


def test_policy_rollouts_pay_the_termination_penalty_as_planning_does() -> None:
    """The BPTT policy's imagined return (seed 000 section 4) ends and pays the penalty as the planner's does."""
    from worldmodel.agents.state_policies import policy_returns

    model = counting_model(False, False, termination_penalty=100.0)
    still = lambda state, hidden: (torch.zeros(*state.shape[:-1], A), None)  # noqa: E731  (E, B, A): no action
    returns = policy_returns(model, still, torch.zeros(1, S), 6, next_x_reward, reaches_three)  # (E, B)
    torch.testing.assert_close(returns, torch.full((2, 1), 6.0 - 100.0))
    torch.testing.assert_close(returns.mean(dim=0), rollout(model, 6, next_x_reward, reaches_three)[0, :1])
