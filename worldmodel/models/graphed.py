"""A whole training step (forward, backward, gradient clipping, Adam) replayed as one CUDA graph.

    step = GraphedStep(eager_step, optimizer)
    metrics = step(batch)          # batch: tensors on the GPU, the same shapes every call

Eager, a PlaNet-size step is ~4000 small kernels (50 RSSM steps, forward and backward), and on a GPU
their launches cost more than their work. The first ``WARMUP_STEPS`` calls run eagerly on a side stream
(cuDNN picks its algorithms, Adam creates its moments); the next one records the step into a graph, and
from then on each call copies the batch into the graph's input tensors and replays it: one launch.
Random draws inside (dequantisation noise, posterior samples) come from torch's CUDA generator, which
advances on every replay. If recording fails, a warning says why and the eager step takes over.
"""

from __future__ import annotations

import warnings
from typing import Callable, Mapping

import torch
from torch import Tensor

from worldmodel.cuda_graphs import on_side_stream, record_graph

WARMUP_STEPS = 3


class GraphedStep:
    """``step(batch, capturing=False)`` -> detached scalar metrics; ``capturing`` is True while it is recorded."""

    def __init__(self, step: Callable[..., dict[str, Tensor]], optimizer: torch.optim.Optimizer) -> None:
        self.step = step
        self.optimizer = optimizer
        self.reset()

    def reset(self) -> None:
        """Forget the graph (after the optimizer's state was replaced, e.g. a checkpoint loaded)."""
        self.graph: torch.cuda.CUDAGraph | None = None
        self.inputs: dict[str, Tensor] = {}
        self.outputs: dict[str, Tensor] = {}
        self.eager_steps = 0
        self.failed = False

    def __call__(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        if self.failed:
            return self.step(batch)
        if self.graph is None and self.eager_steps < WARMUP_STEPS:
            self.eager_steps += 1
            return on_side_stream(lambda: self.step(batch))
        if self.graph is None and not self._record(batch):
            return self.step(batch)
        for key, value in batch.items():
            if value.shape != self.inputs[key].shape:
                raise ValueError(f"a graphed training step needs the same batch shapes every call: {key} was "
                                 f"{tuple(self.inputs[key].shape)}, now {tuple(value.shape)}")
            self.inputs[key].copy_(value)
        self.graph.replay()
        # Copies: the next replay overwrites the graph's outputs, and callers keep the metrics of many steps.
        return {key: value.clone() for key, value in self.outputs.items()}

    def _record(self, batch: Mapping[str, Tensor]) -> bool:
        """Record the step into a graph (nothing runs yet); False, with a warning, where that fails."""
        self.inputs = {key: value.clone() for key, value in batch.items()}
        set_capturable(self.optimizer, True)
        # Gradients created inside the capture live in the graph's memory pool; every replay rewrites them.
        self.optimizer.zero_grad(set_to_none=True)
        try:
            graph, self.outputs = record_graph(lambda: self.step(self.inputs, capturing=True))
        except Exception as err:  # noqa: BLE001 - any capture failure: train eagerly instead
            warnings.warn(f"model.train_graph: recording the training step failed, training eagerly ({err!r})",
                          stacklevel=3)
            set_capturable(self.optimizer, False)
            self.optimizer.zero_grad(set_to_none=True)
            self.failed = True
            return False
        self.graph = graph
        return True


def set_capturable(optimizer: torch.optim.Optimizer, capturable: bool) -> None:
    """Adam's step counters live on the parameters' device when it is captured in a graph (capturable),
    on the host otherwise."""
    for group in optimizer.param_groups:
        if "capturable" not in group:
            continue
        group["capturable"] = capturable
        for param in group["params"]:
            state = optimizer.state.get(param, {})
            if "step" in state:
                device = param.device if capturable else torch.device("cpu")
                state["step"] = state["step"].to(device=device, dtype=torch.float32)
