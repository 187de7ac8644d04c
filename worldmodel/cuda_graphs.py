"""CUDA graph recording, shared by the graphed training step, the recorded planner call and the benches.

    graph, out = record_graph(lambda: fn(static_inputs), warmups=2)   # nothing recorded runs yet
    static_inputs.copy_(new_inputs); graph.replay()                    # ``out`` now holds fn(new_inputs)
"""

from __future__ import annotations

from typing import Callable, Sequence, TypeVar

import torch

T = TypeVar("T")


def on_side_stream(fn: Callable[[], T]) -> T:
    """``fn()`` on a side stream, as the eager calls before a recording must run (cuBLAS handles and the
    caching allocator are set up there, outside the graph)."""
    side = torch.cuda.Stream()
    side.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(side):
        out = fn()
    torch.cuda.current_stream().wait_stream(side)
    return out


def record_graph(
    fn: Callable[[], T], *, warmups: int = 0, generators: Sequence[torch.Generator] = ()
) -> tuple[torch.cuda.CUDAGraph, T]:
    """``fn()`` recorded as one CUDA graph after ``warmups`` eager calls -> (graph, fn's outputs, which every
    replay rewrites). ``generators``: the custom torch generators ``fn`` draws from (torch's default CUDA
    generator is always registered), so that every replay draws fresh numbers."""
    for _ in range(warmups):
        on_side_stream(fn)
    graph = torch.cuda.CUDAGraph()
    for generator in generators:
        graph.register_generator_state(generator)
    with torch.cuda.graph(graph):
        out = fn()
    return graph, out
