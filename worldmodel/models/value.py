"""A learned value of the latent state, for the planner to look past its horizon (``model.value``), as TD-MPC2
and Dreamer do: the return it predicts for the last imagined state is added to the imagined rewards.

    value = LatentValue(belief_size=D, state_size=S, hidden_size=H, discount=0.99, lam=0.95, learning_rate=3e-4)
    loss, metrics = value.loss(states.h, states.z, batch["reward"], batch["is_first"])   # on a replay chunk (B, T)
    v = value(h, z)                                                                       # (..., D), (..., S) -> (...)

What it predicts: V(h_t, z_t) = E[r_{t+1} + discount * r_{t+2} + ...], the discounted rewards after arriving in
(h_t, z_t) (the reward head predicts r_t, the reward of arriving there). It learns on the world model's replay
chunks, from the posterior states of the chunk, detached (the value does not shape the representation), by
regression onto TD(lambda) targets built from the chunk's rewards and its own detached predictions (Dreamer v1's
targets, along recorded rather than imagined steps). The chunks were collected by the planner with exploration
noise, so this is that behaviour's value. It has its own Adam and gradient clipping: its targets are up to
1 / (1 - discount) times a step's reward, and a shared clip would let its gradient shrink the world model's.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor, nn

from worldmodel.models.reward_head import RewardHead


class ValueHead(RewardHead):
    """(h (..., D), z (..., S)) -> V (...): the reward head's layers (Linear-ELU-Linear-ELU-Linear on [h, z])."""


def lambda_returns(reward: Tensor, value: Tensor, is_first: Tensor, discount: float, lam: float) -> Tensor:
    """TD(lambda) targets along a chunk: rewards r (B, T) (r_t for arriving at step t), values v (B, T), is_first
    (B, T) -> targets G (B, T - 1) for steps 0 .. T-2:

        G_t = r_{t+1} + discount * ((1 - lam) * v_{t+1} + lam * G_{t+1}),   G_{T-1} = v_{T-1},

    and G_t = v_t where step t+1 starts a new episode (nothing of the next episode reaches this one; ``mask``
    leaves those steps out of the loss)."""
    T = reward.shape[1]
    cont = ~is_first[:, 1:]  # (B, T-1): step t continues into t+1
    targets = []
    next_return = value[:, -1]  # (B,)
    for t in range(T - 2, -1, -1):
        bootstrap = (1 - lam) * value[:, t + 1] + lam * next_return
        target = reward[:, t + 1] + discount * bootstrap  # (B,)
        next_return = torch.where(cont[:, t], target, value[:, t])
        targets.append(next_return)
    return torch.stack(targets[::-1], dim=1)  # (B, T-1)


class LatentValue(nn.Module):
    """The value head with its own optimizer; ``loss`` on a chunk's posterior states, ``step`` after backward."""

    def __init__(
        self,
        *,
        belief_size: int,
        state_size: int,
        hidden_size: int,
        discount: float,
        lam: float,
        learning_rate: float,
        grad_clip: float = 100.0,
    ) -> None:
        super().__init__()
        self.head = ValueHead(belief_size=belief_size, state_size=state_size, hidden_size=hidden_size)
        self.discount, self.lam, self.grad_clip = discount, lam, grad_clip
        self.optimizer = torch.optim.Adam(self.head.parameters(), lr=learning_rate)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        return self.head(h, z)

    def loss(self, h: Tensor, z: Tensor, reward: Tensor, is_first: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Posterior states h (B, T, D), z (B, T, S) (detached here), rewards (B, T), is_first (B, T) -> the mean
        squared error against the TD(lambda) targets over the steps that continue, and metrics."""
        value = self.head(h.detach(), z.detach())  # (B, T)
        targets = lambda_returns(reward, value.detach(), is_first, self.discount, self.lam)  # (B, T-1)
        mask = (~is_first[:, 1:]).float()  # (B, T-1)
        loss = ((value[:, :-1] - targets).pow(2) * mask).sum() / mask.sum().clamp(min=1.0)
        return loss, {"value_loss": loss.detach(), "value_mean": value.mean().detach()}

    def step(self) -> Tensor:
        """Clip the head's gradient and take an Adam step -> the gradient's norm before clipping."""
        norm = nn.utils.clip_grad_norm_(self.head.parameters(), self.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm.detach()

    def checkpoint_state(self) -> dict[str, Any]:
        return self.optimizer.state_dict()

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        self.optimizer.load_state_dict(state)
