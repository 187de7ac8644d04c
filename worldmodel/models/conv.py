"""Convolutional encoder (frame -> embedding) and decoder (h, z -> frame mean), PlaNet / World
Models style: four stride-2 convolutions down, a linear layer and four transposed convolutions up.

Both take any leading dimensions: (..., C, H, W) <-> (..., E). The decoder's transposed
convolutions produce exactly 64x64 frames, so that is the one frame size the pixel model takes;
``check_image_shape`` says so in one line before anything is built.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodel.errors import ConfigError

FRAME_SIZE = 64
"""Height and width of the frames the encoder and decoder take."""


def check_image_shape(image_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """Return ``image_shape`` as (C, H, W) or raise a one-line ``ConfigError`` naming the size we take."""
    shape = tuple(int(x) for x in image_shape)
    if len(shape) != 3 or shape[0] < 1 or shape[1:] != (FRAME_SIZE, FRAME_SIZE):
        raise ConfigError(
            f"the pixel world model takes frames of shape (C, {FRAME_SIZE}, {FRAME_SIZE}) "
            f"(render at {FRAME_SIZE}x{FRAME_SIZE}); got {shape}"
        )
    return shape  # type: ignore[return-value]


def conv_output_size(depth: int) -> int:
    """Flattened size after the four stride-2 convolutions on a 64x64 frame: 64 -> 31 -> 14 -> 6 -> 2."""
    return 8 * depth * 2 * 2


class ConvEncoder(nn.Module):
    """Frames (..., C, 64, 64) in [-0.5, 0.5] -> embeddings (..., embedding_size).

    Channels go depth, 2 depth, 4 depth, 8 depth; with PlaNet's depth 32 the flattened output is
    already 1024, so the final linear layer only exists when ``embedding_size`` differs from it.
    """

    def __init__(self, *, image_shape: tuple[int, int, int], depth: int, embedding_size: int) -> None:
        super().__init__()
        channels, _, _ = check_image_shape(image_shape)
        self.convs = nn.Sequential(
            nn.Conv2d(channels, depth, 4, stride=2),  # (C, 64, 64) -> (d, 31, 31)
            nn.ReLU(),
            nn.Conv2d(depth, 2 * depth, 4, stride=2),  # -> (2d, 14, 14)
            nn.ReLU(),
            nn.Conv2d(2 * depth, 4 * depth, 4, stride=2),  # -> (4d, 6, 6)
            nn.ReLU(),
            nn.Conv2d(4 * depth, 8 * depth, 4, stride=2),  # -> (8d, 2, 2)
            nn.ReLU(),
        )
        flat = conv_output_size(depth)
        self.project = nn.Identity() if flat == embedding_size else nn.Linear(flat, embedding_size)
        self.image_shape = tuple(image_shape)
        self.embedding_size = embedding_size

    def forward(self, obs: Tensor) -> Tensor:
        lead = obs.shape[:-3]
        x = obs.reshape(-1, *obs.shape[-3:]).contiguous(memory_format=torch.channels_last)  # (B*, C, H, W)
        x = rearrange(self.convs(x), "b c h w -> b (c h w)")  # (B*, 32 d)
        x = self.project(x)  # (B*, E)
        return x.reshape(*lead, self.embedding_size)  # (..., E)


class ConvDecoder(nn.Module):
    """Latent (h (..., D), z (..., S)) -> frame mean (..., C, 64, 64), unbounded (targets are in [-0.5, 0.5])."""

    def __init__(self, *, belief_size: int, state_size: int, depth: int, image_shape: tuple[int, int, int]) -> None:
        super().__init__()
        channels, _, _ = check_image_shape(image_shape)
        bottleneck = conv_output_size(depth)  # 32 d, seen as a (32 d, 1, 1) image
        self.project = nn.Linear(belief_size + state_size, bottleneck)
        self.deconvs = nn.Sequential(
            nn.ConvTranspose2d(bottleneck, 4 * depth, 5, stride=2),  # (32d, 1, 1) -> (4d, 5, 5)
            nn.ReLU(),
            nn.ConvTranspose2d(4 * depth, 2 * depth, 5, stride=2),  # -> (2d, 13, 13)
            nn.ReLU(),
            nn.ConvTranspose2d(2 * depth, depth, 6, stride=2),  # -> (d, 30, 30)
            nn.ReLU(),
            nn.ConvTranspose2d(depth, channels, 6, stride=2),  # -> (C, 64, 64)
        )
        self.image_shape = tuple(image_shape)

    def forward(self, h: Tensor, z: Tensor) -> Tensor:
        lead = h.shape[:-1]
        x = self.project(torch.cat([h, z], dim=-1))  # (..., 32 d)
        x = self._first_deconv(x.reshape(-1, x.shape[-1]))  # (B*, 4d, 5, 5)
        x = x.contiguous(memory_format=torch.channels_last)
        for layer in self.deconvs[1:]:
            x = transposed_conv(layer, x) if isinstance(layer, nn.ConvTranspose2d) else layer(x)
        return x.reshape(*lead, *self.image_shape)  # (B*, C, 64, 64) -> (..., C, H, W)

    def _first_deconv(self, x: Tensor) -> Tensor:
        """``deconvs[0]`` on the (32 d, 1, 1) image x (B*, 32 d) as the matmul it is: each output pixel is a
        linear map of the one input pixel. On a CPU torch's transposed convolution takes 10x longer."""
        first = self.deconvs[0]
        channels, size = first.out_channels, first.kernel_size[0]
        out = x @ first.weight.flatten(1)  # (B*, 4d * 5 * 5)
        return out.view(-1, channels, size, size) + first.bias.to(out.dtype)[:, None, None]  # (B*, 4d, 5, 5)


# ---- transposed convolutions on a CPU -------------------------------------------------------------


def transposed_conv(layer: nn.ConvTranspose2d, x: Tensor) -> Tensor:
    """``layer(x)`` (x channels-last), in the autocast dtype when autocast is on; faster on a CPU.

    On a CPU the 6x6 stride-2 layers take the sub-pixel path below, and every layer adds its bias after the
    convolution: oneDNN's bf16 transposed convolution with a bias took 27 ms for the decoder's second layer
    (16 x 25 frames of the CPU default model), 4.4 ms without it.
    """
    if x.device.type != "cpu":
        return layer(x)
    weight, bias = layer.weight, layer.bias
    if torch.is_autocast_enabled("cpu"):  # a custom Function is not autocast, so cast here as autocast would
        dtype = torch.get_autocast_dtype("cpu")
        x, weight, bias = x.to(dtype), weight.to(dtype), None if bias is None else bias.to(dtype)
    plain = layer.padding == (0, 0) and layer.output_padding == (0, 0) and layer.groups == 1
    if plain and layer.kernel_size == (6, 6) and layer.stride == (2, 2) and bias is not None:
        return SubpixelTransposedConv.apply(x, weight, bias)
    y = F.conv_transpose2d(
        x, weight, None, layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation
    )
    return y if bias is None else y + bias[:, None, None]


class SubpixelTransposedConv(torch.autograd.Function):
    """``conv_transpose2d(x, w, b, stride=2)`` for a 6x6 kernel, the same numbers computed faster on a CPU.

    Forward: each of the 2x2 output phases is a 3x3 correlation of the input padded by 2, so the layer is one
    ordinary convolution to 4 x out channels and a pixel shuffle. torch's CPU transposed convolution runs
    the last decoder layer (16 -> 3 channels) at 30 GFLOP/s; this path is 4x faster there.
    Backward: the transposed convolution's own gradients (a strided convolution and a weight gradient),
    which torch already runs fast; differentiating the sub-pixel forward instead was slower.
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor) -> Tensor:
        ctx.save_for_backward(x, weight)
        cin, cout = weight.shape[:2]  # weight (Cin, Cout, 6, 6): kernel tap t = 2 m + phase r
        taps = weight.view(cin, cout, 3, 2, 3, 2).flip(2, 4)  # (Cin, Cout, m, r, m, r), m reversed
        taps = rearrange(taps, "i o m r n s -> (r s o) i m n")  # (4 Cout, Cin, 3, 3)
        taps = taps.contiguous(memory_format=torch.channels_last)
        y = F.conv2d(F.pad(x, (2, 2, 2, 2)), taps, bias.repeat(4))  # (B, 4 Cout, H + 2, W + 2)
        # The pixel shuffle, written for channels-last memory (F.pixel_shuffle on it took 5 ms a call).
        y = rearrange(y.permute(0, 2, 3, 1), "b h w (r s o) -> b (h r) (w s) o", r=2, s=2)  # (B, 2H+4, 2W+4, Cout)
        return y.permute(0, 3, 1, 2)  # (B, Cout, 2 H + 4, 2 W + 4), channels-last memory

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[Tensor | None, Tensor, Tensor]:
        x, weight = ctx.saved_tensors
        grad = grad.contiguous(memory_format=torch.channels_last)  # (B, Cout, 2 H + 4, 2 W + 4)
        grad_x = F.conv2d(grad, weight, stride=2) if ctx.needs_input_grad[0] else None  # (B, Cin, H, W)
        # The weight gradient of conv2d(grad, weight) at output gradient x is the transposed conv's.
        _, grad_weight, _ = torch.ops.aten.convolution_backward(
            x, grad, weight, None, [2, 2], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False]
        )
        return grad_x, grad_weight, grad.sum((0, 2, 3))
