"""Compile a whole planner call (every CEM iteration, the model rollouts inside) into one graph.

    plan = compiled_call(fn, device)(h, z)       # fn(h, z) -> plan (B, L, A), the same plan as fn's

On CUDA the call runs as CUDA graphs (``torch.compile(mode="reduce-overhead")``): one launch per
planner call instead of thousands of small kernels. On a CPU inductor fuses the elementwise work.
Compiling takes a while (seconds on a GPU, a minute or more on a CPU for PlaNet's 10 x 12 steps), so
it pays for long runs, not for tests. If compiling fails in the first calls, a warning says why and the
eager function takes over, so a run never dies of it.
"""

from __future__ import annotations

import warnings
from typing import Callable

import torch
from torch import Tensor

PlanCall = Callable[[Tensor, Tensor], Tensor]
"""h (B, D), z (B, S) -> plan (B, L, A)."""

FALLBACK_CALLS = 3
"""Calls during which a compile error falls back to eager: compiling, then CUDA graph warm-up and recording."""


def compiled_call(fn: PlanCall, device: torch.device) -> PlanCall:
    mode = "reduce-overhead" if device.type == "cuda" else None
    compiled = torch.compile(fn, mode=mode, dynamic=False)
    calls = 0
    current: PlanCall = compiled

    def call(h: Tensor, z: Tensor) -> Tensor:
        nonlocal calls, current
        calls += 1
        if current is compiled and calls <= FALLBACK_CALLS:
            try:
                return compiled(h, z).clone()  # clone: a CUDA graph reuses its output memory on the next replay
            except Exception as err:  # noqa: BLE001 - any compiler failure: plan eagerly instead
                warnings.warn(f"model.plan_compile: compiling the planner failed, planning eagerly instead ({err!r})",
                              stacklevel=2)
                current = fn
        return current(h, z).clone()

    return call
