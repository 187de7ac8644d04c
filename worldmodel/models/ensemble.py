"""An ensemble of MLPs held as stacked weights: one (E, in, out) tensor per layer, so all E
members run in one batched matmul per layer and no python loop over members is needed.

Two kernels compute the same function:

* ``stacked``: one ``baddbmm`` per layer over the whole (E, in, out) stack. Used for training
  (autograd sees E-free python code) and on GPUs, where one launch per layer beats E small ones.
* ``per_member``: one ``addmm`` per member and layer on views of the stacked weights, member by
  member. Inference only. On CPU at the homework sizes (E=5, 23 -> 250 -> 250 -> 18,
  1000 rows) it was measured at ~109 GFLOP/s against ~74 for ``baddbmm`` (peak ~120, 2 cores,
  /tmp microbenchmark reproduced by ``scripts/bench_planner.py``'s ``kernel_ms``): MKL's plain
  GEMM is better tuned than its batched one, and running one member through all its layers
  keeps that member's (rows, 250) activations in cache between layers.

``kernel="auto"`` picks ``per_member`` for CPU inference and ``stacked`` everywhere else. Caveat
seen on a shared 2-core box: when other processes oversubscribe the cores, ``per_member`` (5x the
OpenMP parallel regions) degrades more than ``stacked``; ``--threads 1`` keeps it ahead.
"""

from __future__ import annotations

import math
from typing import Callable, Literal

import torch
from torch import Tensor, nn

Kernel = Literal["auto", "stacked", "per_member"]


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
    """E MLPs with ``num_layers`` hidden ReLU layers of ``hidden_size``: (E, B, in) -> (E, B, out).

    ``kernel`` forces one implementation (tests, benchmarks); ``"auto"`` picks the fastest
    measured one for the device, and always the stacked one when gradients are needed.
    """

    def __init__(
        self,
        in_size: int,
        out_size: int,
        *,
        ensemble_size: int,
        hidden_size: int = 250,
        num_layers: int = 2,
        kernel: Kernel = "auto",
    ) -> None:
        super().__init__()
        sizes = [in_size] + [hidden_size] * num_layers + [out_size]
        self.layers = nn.ModuleList(
            EnsembleLinear(a, b, ensemble_size=ensemble_size) for a, b in zip(sizes[:-1], sizes[1:])
        )
        self.ensemble_size = ensemble_size
        self.out_size = out_size
        self.kernel: Kernel = kernel

    def forward(self, x: Tensor) -> Tensor:
        assert x.dim() == 3 and x.shape[0] == self.ensemble_size, ("expected (E, B, in)", self.ensemble_size, x.shape)
        if self._chosen_kernel(x) == "per_member":
            return self._forward_per_member(x)
        return self._forward_stacked(x)

    def _chosen_kernel(self, x: Tensor) -> Kernel:
        needs_grad = torch.is_grad_enabled() and (x.requires_grad or self.layers[0].weight.requires_grad)
        if needs_grad:
            return "stacked"  # the per-member loop would give autograd E times the graph
        if self.kernel != "auto":
            return self.kernel
        return "per_member" if x.device.type == "cpu" else "stacked"

    def _forward_stacked(self, x: Tensor) -> Tensor:
        last = len(self.layers) - 1
        for i, layer in enumerate(self.layers):
            x = layer(x)  # (E, B, size_i)
            if i < last:
                x = torch.relu(x)
        return x  # (E, B, out)

    def _forward_per_member(self, x: Tensor, params: list[tuple[Tensor, Tensor]] | None = None) -> Tensor:
        E, B, _ = x.shape
        params = params or [(layer.weight, layer.bias) for layer in self.layers]
        out = x.new_empty(E, B, self.out_size)  # written in place: no stack/cat copy at the end
        last = len(params) - 1
        for e in range(E):  # member-major, so each member's activations stay in cache across layers
            h = x[e]  # (B, in)
            for i, (weight, bias) in enumerate(params):
                if i < last:
                    h = torch.addmm(bias[e], h, weight[e]).relu_()  # (B, hidden)
                else:
                    torch.addmm(bias[e], h, weight[e], out=out[e])  # (B, out)
        return out  # (E, B, out)

    @torch.no_grad()
    def low_precision(self, dtype: torch.dtype = torch.bfloat16) -> "Callable[[Tensor], Tensor]":
        """Inference in ``dtype`` (bf16 matmuls run ~2x faster than fp32 on CPUs with avx512_bf16):
        the weights are cast once, the returned function maps (E, B, in) -> (E, B, out) in float32."""
        params = [(layer.weight.to(dtype), layer.bias.to(dtype)) for layer in self.layers]

        def forward(x: Tensor) -> Tensor:
            h = x.to(dtype)
            if self.kernel == "per_member" or (self.kernel == "auto" and x.device.type == "cpu"):
                return self._forward_per_member(h, params).float()
            for i, (weight, bias) in enumerate(params):
                h = torch.baddbmm(bias, h, weight)  # (E, B, size_i)
                h = h.relu_() if i < len(params) - 1 else h
            return h.float()  # (E, B, out)

        return forward
