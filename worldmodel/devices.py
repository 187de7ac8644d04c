"""Where a run's tensors live and how its random streams start: the device a config names, the seeds."""

from __future__ import annotations

import random

import numpy as np
import torch

from worldmodel.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu. ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but torch sees no GPU; use --device cpu or --device auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    if name.startswith("cuda"):
        # TF32 tensor cores for fp32 matmuls (cuDNN's convolutions use them by default): the GRU and MLP
        # matmuls of latent planning are most of its flops, and these models train the same with them.
        torch.set_float32_matmul_precision("high")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
