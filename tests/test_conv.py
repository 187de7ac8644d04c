"""The pixel model's convolutions: encoder/decoder shapes, the decoder's fast first layer and sub-pixel
transposed convolution against torch's, bf16 autocast, the image loss, and frame sizes refused clearly."""

from __future__ import annotations


import pytest
import torch

from worldmodel.errors import ConfigError
from worldmodel.models.conv import ConvDecoder, ConvEncoder, check_image_shape
from worldmodel.models.world_model import WorldModel, WorldModelConfig

A = 2
TINY = dict(belief_size=32, state_size=8, hidden_size=32, embedding_size=128, cnn_depth=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


# ---- conv encoder / decoder ------------------------------------------------------------------


@pytest.mark.parametrize("lead", [(1,), (3,), (2, 5), (1, 1)])
@pytest.mark.parametrize("depth,embedding", [(4, 128), (8, 256), (4, 50)])  # 128 = 32 * 4: no projection
def test_encoder_decoder_shapes(lead: tuple[int, ...], depth: int, embedding: int) -> None:
    encoder = ConvEncoder(image_shape=(3, 64, 64), depth=depth, embedding_size=embedding)
    decoder = ConvDecoder(belief_size=16, state_size=4, depth=depth, image_shape=(3, 64, 64))
    embed = encoder(torch.rand(*lead, 3, 64, 64) - 0.5)
    assert embed.shape == (*lead, embedding)
    assert isinstance(encoder.project, torch.nn.Identity) == (embedding == 32 * depth)
    frames = decoder(torch.randn(*lead, 16), torch.randn(*lead, 4))
    assert frames.shape == (*lead, 3, 64, 64)


def test_decoder_first_layer_as_a_matmul_equals_the_transposed_convolution() -> None:
    torch.manual_seed(0)
    decoder = ConvDecoder(belief_size=12, state_size=5, depth=4, image_shape=(3, 64, 64))
    h, z = torch.randn(6, 12), torch.randn(6, 5)
    with torch.no_grad():
        bottleneck = decoder.project(torch.cat([h, z], dim=-1))[:, :, None, None]  # (6, 32 d, 1, 1)
        expected = decoder.deconvs(bottleneck)  # every layer as torch's transposed convolution
        torch.testing.assert_close(decoder(h, z), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cin, cout, size", [(8, 4, 13), (4, 3, 30)])
def test_subpixel_transposed_conv_gives_torchs_values_and_gradients(cin: int, cout: int, size: int) -> None:
    from worldmodel.models.conv import SubpixelTransposedConv

    torch.manual_seed(0)
    layer = torch.nn.ConvTranspose2d(cin, cout, 6, stride=2)
    x = torch.randn(5, cin, size, size, requires_grad=True)
    grad = torch.randn(5, cout, 2 * size + 4, 2 * size + 4)
    expected = layer(x)
    expected_grads = torch.autograd.grad(expected, [x, layer.weight, layer.bias], grad)
    got = SubpixelTransposedConv.apply(x.contiguous(memory_format=torch.channels_last), layer.weight, layer.bias)
    got_grads = torch.autograd.grad(got, [x, layer.weight, layer.bias], grad)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5)
    for g, e in zip(got_grads, expected_grads):
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


def test_decoder_under_bf16_autocast_follows_the_fp32_decoder_and_gives_fp32_gradients() -> None:
    """Under CPU autocast the decoder's layers run in bf16 (the sub-pixel path included, biases added
    after the convolution); its frames stay within bf16's precision of the fp32 ones."""
    torch.manual_seed(0)
    decoder = ConvDecoder(belief_size=12, state_size=5, depth=4, image_shape=(3, 64, 64))
    h, z = torch.randn(6, 12), torch.randn(6, 5)
    expected = decoder(h, z)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        got = decoder(h, z)
    assert got.dtype == torch.bfloat16 and got.shape == expected.shape
    assert (got.float() - expected).abs().max() < 0.05 * expected.abs().max()
    got.float().square().sum().backward()
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in decoder.parameters())


@pytest.mark.parametrize("channels_last", [False, True])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_squared_error_sum_gives_the_plain_loss_and_its_gradient(dtype: torch.dtype, channels_last: bool) -> None:
    from worldmodel.models.losses import SquaredErrorSum

    def laid_out(frames: torch.Tensor) -> torch.Tensor:  # (B, T, C, H, W) in (B, T, H, W, C) memory, as trained
        return frames.movedim(-3, -1).contiguous().movedim(-1, -3) if channels_last else frames

    torch.manual_seed(0)
    x = laid_out(torch.randn(2, 3, 3, 8, 8).to(dtype)).requires_grad_()
    y = laid_out(torch.rand(2, 3, 3, 8, 8) - 0.5)
    x_before = x.detach().clone()
    expected = (x.float() - y).pow(2).sum(dim=(-3, -2, -1)).mean()
    (expected_grad,) = torch.autograd.grad(expected, x)
    got = SquaredErrorSum.apply(x, y, 1.0 / 6)
    (got_grad,) = torch.autograd.grad(got, x)
    assert got.dtype == torch.float32 and got_grad.dtype == dtype
    torch.testing.assert_close(got, expected)
    torch.testing.assert_close(got_grad, expected_grad)
    assert torch.equal(x.detach(), x_before)  # the loss does not write into the decoder's output


def test_train_dtype_auto_means_bf16_only_where_bf16_is_fast(monkeypatch) -> None:
    from worldmodel.models import world_model

    cpu = torch.device("cpu")
    assert world_model.trains_in_bf16("bfloat16", cpu) and not world_model.trains_in_bf16("float32", cpu)
    for native in (True, False):
        monkeypatch.setattr(world_model, "has_native_bf16", lambda: native)
        assert world_model.trains_in_bf16("auto", cpu) is native
    assert not world_model.trains_in_bf16("auto", torch.device("meta"))


def test_planet_sizes_give_a_1024_embedding_without_projection() -> None:
    encoder = ConvEncoder(image_shape=(3, 64, 64), depth=32, embedding_size=1024)
    assert isinstance(encoder.project, torch.nn.Identity)
    assert encoder(torch.zeros(2, 3, 64, 64)).shape == (2, 1024)


@pytest.mark.parametrize("shape", [(3, 84, 84), (3, 64, 32), (64, 64, 3), (3, 64)])
def test_frame_size_the_encoder_cannot_take_is_a_clear_error(shape: tuple[int, ...]) -> None:
    with pytest.raises(ConfigError, match=r"takes frames of shape \(C, 64, 64\).*got"):
        check_image_shape(shape)
    with pytest.raises(ConfigError, match="64x64"):
        WorldModel(WorldModelConfig(**TINY), action_size=A, image_shape=shape)
    assert check_image_shape((1, 64, 64)) == (1, 64, 64)


def test_config_rejects_bad_sizes() -> None:
    with pytest.raises(ConfigError, match="model.state_size must be >= 1"):
        WorldModelConfig(state_size=0)
    with pytest.raises(ConfigError, match="bit_depth must be between 1 and 8"):
        WorldModelConfig(bit_depth=9)
    with pytest.raises(ConfigError, match="model.lr_warmup must be >= 0"):
        WorldModelConfig(lr_warmup=-1)
