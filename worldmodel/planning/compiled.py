"""Record a whole planner call (every CEM iteration, the model rollouts inside) as one graph.

    plan = compiled_call(fn, device, generators)(h, z)     # fn(h, z) -> plan (B, L, A), the same plan as fn's

On CUDA the call is recorded as one CUDA graph per batch shape (after two eager warm-up calls) and
replayed with a single launch instead of ~2000 small kernels; ``generators`` are the custom torch
generators ``fn`` draws from, registered with the graph so every replay draws fresh numbers.
(torch.compile's "reduce-overhead" mode skipped its CUDA graphs here: a custom generator breaks the
function into pieces.) On a CPU inductor compiles ``fn`` and fuses the elementwise work; that takes a
minute or more for PlaNet's 10 x 12 steps, so it pays for long runs, not for tests. If recording or
compiling fails in the first calls, a warning says why and the eager function takes over, so a run
never dies of it.
"""

from __future__ import annotations

import warnings
from typing import Callable, Sequence

import torch
from torch import Tensor

from worldmodel.cuda_graphs import record_graph

PlanCall = Callable[[Tensor, Tensor], Tensor]
"""h (B, D), z (B, S) -> plan (B, L, A)."""

FALLBACK_CALLS = 3
"""Calls during which a compile error falls back to eager: compiling, then CUDA graph warm-up and recording."""


def compiled_call(fn: PlanCall, device: torch.device, generators: Sequence[torch.Generator] = ()) -> PlanCall:
    if device.type == "cuda":
        return cuda_graph_call(fn, generators)
    compiled = torch.compile(fn, dynamic=False)
    calls = 0
    current: PlanCall = compiled

    def call(h: Tensor, z: Tensor) -> Tensor:
        nonlocal calls, current
        calls += 1
        if current is compiled and calls <= FALLBACK_CALLS:
            try:
                return compiled(h, z).clone()  # clone: a CUDA graph reuses its output memory on the next replay
            except Exception as err:  # noqa: BLE001 - any compiler failure: plan eagerly instead
                warnings.warn(f"planner.compile: compiling the planner failed, planning eagerly instead ({err!r})",
                              stacklevel=2)
                current = fn
        return current(h, z).clone()

    return call


def cuda_graph_call(fn: PlanCall, generators: Sequence[torch.Generator] = ()) -> PlanCall:
    graphs: dict[tuple, tuple[torch.cuda.CUDAGraph, Tensor, Tensor, Tensor]] = {}
    failed = False

    def call(h: Tensor, z: Tensor) -> Tensor:
        nonlocal failed
        if failed:
            return fn(h, z)
        key = (tuple(h.shape), tuple(z.shape))
        if key not in graphs:
            try:
                graphs[key] = record(fn, h, z, generators)
            except Exception as err:  # noqa: BLE001 - any capture failure: plan eagerly instead
                warnings.warn(f"planner.compile: recording the planner failed, planning eagerly instead ({err!r})",
                              stacklevel=2)
                failed = True
                return fn(h, z)
        graph, h_in, z_in, plan = graphs[key]
        h_in.copy_(h)
        z_in.copy_(z)
        graph.replay()
        return plan.clone()  # the next replay rewrites ``plan``

    return call


def record(fn: PlanCall, h: Tensor, z: Tensor, generators: Sequence[torch.Generator]):
    """-> (graph, its h and z inputs, its plan output); nothing of the recorded call runs yet."""
    h_in, z_in = h.clone(), z.clone()
    graph, plan = record_graph(lambda: fn(h_in, z_in), warmups=2, generators=generators)
    return graph, h_in, z_in, plan
