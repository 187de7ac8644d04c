"""The layers a model part's fast paths assume, stated once and checked when the part is built.

The RSSM and the reward head are small MLPs of Linear and ELU layers around a GRU cell. Their fast paths
(``RSSM.observe``, ``latent_planning``'s rollouts) do not call those modules: they take the Linears' weights
through the parts' named accessors and apply ELU and the GRU equations themselves. A LayerNorm, another
activation, a Linear without bias or of another size would be computed by the reference path and silently
skipped by the fast ones, so a part refuses, when it is built, any layers but the ones they compute.
"""

from __future__ import annotations

from typing import Iterable

from torch import Tensor, nn

ELU = "ELU(alpha=1.0)"


class LayoutError(TypeError):
    """A model part whose layers differ from what its fast paths compute (a programming error)."""


def split_input(layer: nn.Linear, first: int) -> tuple[Tensor, Tensor, Tensor]:
    """A Linear over a concatenated input [x, y] split by it: W_x (out, first), W_y (out, rest), bias (out,), so
    that ``[x, y] W^T + b = x W_x^T + y W_y^T + b`` (views: gradients reach the layer)."""
    return layer.weight[:, :first], layer.weight[:, first:], layer.bias


def linear(in_size: int, out_size: int) -> str:
    """How ``describe`` writes an ``nn.Linear(in_size, out_size)`` with a bias."""
    return f"Linear({in_size} -> {out_size})"


def gru_cell(in_size: int, out_size: int) -> str:
    """How ``describe`` writes an ``nn.GRUCell(in_size, out_size)`` with biases."""
    return f"GRUCell({in_size} -> {out_size})"


def elu_mlp(*sizes: int, elu_last: bool = False) -> list[str]:
    """Linear(sizes[0] -> sizes[1]), ELU, Linear(sizes[1] -> sizes[2]), ...: an ELU between Linears, and after the
    last one too if ``elu_last``."""
    layers = []
    for i, (in_size, out_size) in enumerate(zip(sizes, sizes[1:])):
        layers.append(linear(in_size, out_size))
        if elu_last or i < len(sizes) - 2:
            layers.append(ELU)
    return layers


def describe(module: nn.Module) -> str:
    """A layer as the fast paths see it: exact types only (a subclass may compute something else)."""
    if type(module) is nn.Linear:
        out_size, in_size = module.weight.shape
        return linear(in_size, out_size) if module.bias is not None else f"Linear({in_size} -> {out_size}, no bias)"
    if type(module) is nn.ELU:
        return f"ELU(alpha={module.alpha})"
    if type(module) is nn.GRUCell:
        described = gru_cell(module.input_size, module.hidden_size)
        return described if module.bias else f"{described[:-1]}, no bias)"
    return repr(module)


def check_layers(name: str, modules: Iterable[nn.Module], expected: list[str], fast_paths: str) -> None:
    """Refuse, saying what differs, ``modules`` that are not exactly the ``expected`` layers, which ``fast_paths``
    (where to look) compute."""
    got = [describe(module) for module in modules]
    if got != expected:
        raise LayoutError(
            f"{name} is [{', '.join(got)}], but its fast paths ({fast_paths}) compute [{', '.join(expected)}]: "
            "change them with the model (and the layout its check_layout states)"
        )
