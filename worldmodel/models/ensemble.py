"""An ensemble of MLPs held as stacked weights: one (E, in, out) tensor per layer, so all E
members run in one batched matmul per layer and no python loop over members is needed."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


class EnsembleLinear(nn.Module):
    """E independent linear layers: (E, B, in) -> (E, B, out)."""

    def __init__(self, in_size: int, out_size: int, *, ensemble_size: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(ensemble_size, in_size, out_size))  # (E, in, out)
        self.bias = nn.Parameter(torch.empty(ensemble_size, 1, out_size))  # (E, 1, out)
        bound = 1 / math.sqrt(in_size)  # nn.Linear's default init, per member
        nn.init.uniform_(self.weight, -bound, bound)
        nn.init.uniform_(self.bias, -bound, bound)

    def forward(self, x: Tensor) -> Tensor:
        return torch.baddbmm(self.bias, x, self.weight)  # (E, B, out)


class EnsembleMLP(nn.Module):
    """E MLPs with ``num_layers`` hidden layers of ``hidden_size``: (E, B, in) -> (E, B, out)."""

    def __init__(
        self, in_size: int, out_size: int, *, ensemble_size: int, hidden_size: int = 250, num_layers: int = 2
    ) -> None:
        super().__init__()
        sizes = [in_size] + [hidden_size] * num_layers + [out_size]
        self.layers = nn.ModuleList(
            EnsembleLinear(a, b, ensemble_size=ensemble_size) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.ensemble_size = ensemble_size

    def forward(self, x: Tensor) -> Tensor:
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = torch.relu(x)
        return x  # (E, B, out)
