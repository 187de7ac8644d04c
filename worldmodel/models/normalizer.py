"""Per-dimension mean/std normalisation held in torch buffers (saved with the model's state dict)."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class Normalizer(nn.Module):
    """``normalize(x) = (x - mean) / std`` and its exact inverse, over the last dim of size ``size``.

    A dimension that never varies in the fitted data (std below ``eps``) gets std 1 rather than
    a tiny one: it is only centred, so noise it picks up later is not blown up into huge inputs.
    """

    def __init__(self, size: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("mean", torch.zeros(size))  # (D,)
        self.register_buffer("std", torch.ones(size))  # (D,)

    @torch.no_grad()
    def fit(self, x: Tensor) -> None:
        """Set mean and std from samples ``x`` (..., D)."""
        flat = x.reshape(-1, x.shape[-1]).to(self.mean)  # (n, D)
        std = flat.std(dim=0, unbiased=False)
        self.mean.copy_(flat.mean(dim=0))
        self.std.copy_(torch.where(std < self.eps, torch.ones_like(std), std))

    def normalize(self, x: Tensor) -> Tensor:
        return (x - self.mean) / self.std

    def denormalize(self, x: Tensor) -> Tensor:
        return x * self.std + self.mean
