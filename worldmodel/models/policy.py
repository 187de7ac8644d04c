"""The state agent's policy network (seed 000, CS294-112 hw4 2017, sections 4-6): observations -> actions in
the env's action box, deterministic.

One definition, two bodies:

- an MLP (``recurrent=False``): what policy-guided MPC rolls out inside the planner's imagined rollouts and
  what DAgger trains, both by imitating MPC;
- stacked GRU cells (``recurrent=True``): seed 000's BPTT policy, trained by backpropagating the known reward
  through the frozen dynamics ensemble.

Shapes: any leading dims ``...`` (a batch B of envs, or E members x R rollouts), S observation size, A action
size, H hidden size, K stacked GRU layers. The recurrent state is (K, n, H) with n the product of the leading
dims; the MLP has none (None).

    net = PolicyNetwork(obs_size=18, action_size=6, hidden_size=64, num_layers=2, recurrent=False, low=low, high=high)
    net.obs_norm.fit(obs)                       # (n, S): the input statistics, like the ensemble's
    action, state = net(obs, state)             # (..., S), None or (K, n, H) -> (..., A), None or (K, n, H)
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from worldmodel.models.normalizer import Normalizer


class PolicyNetwork(nn.Module):
    """A deterministic policy on normalised observations; its output squashed into [low, high] by tanh."""

    def __init__(
        self,
        *,
        obs_size: int,
        action_size: int,
        hidden_size: int,
        num_layers: int,
        recurrent: bool,
        low: Tensor,
        high: Tensor,
    ) -> None:
        super().__init__()
        assert low.shape == high.shape == (action_size,), (action_size, low.shape, high.shape)
        self.obs_size = obs_size
        self.action_size = action_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.recurrent = recurrent
        self.obs_norm = Normalizer(obs_size)
        self.register_buffer("low", low.detach().clone().float())  # (A,)
        self.register_buffer("high", high.detach().clone().float())  # (A,)
        if recurrent:
            sizes = [obs_size] + [hidden_size] * num_layers
            self.cells = nn.ModuleList(nn.GRUCell(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        else:
            layers: list[nn.Module] = []
            for size in [obs_size] + [hidden_size] * (num_layers - 1):
                layers += [nn.Linear(size, hidden_size), nn.ReLU()]
            self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden_size, action_size)

    def initial_state(self, rows: int) -> Tensor | None:
        """The recurrent state at the start of ``rows`` sequences: zeros (K, rows, H); None for the MLP."""
        if not self.recurrent:
            return None
        return torch.zeros(self.num_layers, rows, self.hidden_size, device=self.low.device)

    def forward(self, obs: Tensor, state: Tensor | None = None) -> tuple[Tensor, Tensor | None]:
        """(..., S) observations and the recurrent state (K, n, H) (None: the initial one) -> actions (..., A)
        in [low, high] and the next recurrent state (None for the MLP)."""
        x = self.obs_norm.normalize(obs)  # (..., S)
        if self.recurrent:
            lead = x.shape[:-1]
            x = x.reshape(-1, self.obs_size)  # (n, S)
            state = self.initial_state(x.shape[0]) if state is None else state
            hidden = []
            for cell, h in zip(self.cells, state):  # layer by layer: each cell's output feeds the next
                x = cell(x, h)  # (n, H)
                hidden.append(x)
            state = torch.stack(hidden)  # (K, n, H)
            x = x.reshape(*lead, self.hidden_size)  # (..., H)
        else:
            x = self.body(x)  # (..., H)
        return self.squash(self.head(x)), state

    def squash(self, raw: Tensor) -> Tensor:
        """Unbounded (..., A) -> the action box: low + (tanh(raw) + 1) / 2 (high - low)."""
        return self.low + (torch.tanh(raw) + 1) * (0.5 * (self.high - self.low))

    def act(self, obs: Tensor) -> Tensor:
        """The MLP's actions (..., S) -> (..., A) alone: what guided rollouts call on imagined states."""
        assert not self.recurrent, "a recurrent policy needs its state: call net(obs, state)"
        return self(obs)[0]
