"""Normalizer: fitted statistics, exact round trip, zero-variance dims, state dict."""

from __future__ import annotations

import torch

from worldmodel.models.normalizer import Normalizer


def sample_data() -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1000, 4, generator=g) * torch.tensor([1.0, 10.0, 0.01, 1.0]) + torch.tensor([5.0, -3.0, 0.0, 2.0])
    x[:, 3] = 2.0  # a dimension that never varies
    return x


def test_normalized_data_has_zero_mean_unit_std():
    norm = Normalizer(4)
    x = sample_data()
    norm.fit(x)
    z = norm.normalize(x)
    torch.testing.assert_close(z[:, :3].mean(0), torch.zeros(3), atol=1e-5, rtol=0)
    torch.testing.assert_close(z[:, :3].std(0, unbiased=False), torch.ones(3), atol=1e-4, rtol=0)


def test_round_trip_is_exact():
    norm = Normalizer(4)
    x = sample_data()
    norm.fit(x)
    torch.testing.assert_close(norm.denormalize(norm.normalize(x)), x, atol=1e-5, rtol=1e-6)
    z = torch.randn(7, 3, 4)
    torch.testing.assert_close(norm.normalize(norm.denormalize(z)), z, atol=1e-5, rtol=1e-5)


def test_zero_variance_dim_is_finite():
    norm = Normalizer(4)
    x = sample_data()
    norm.fit(x)
    assert norm.std[3] == 1.0  # only centred: later noise is not blown up by a tiny std
    z = norm.normalize(x + 1e-3)
    assert torch.isfinite(z).all()
    torch.testing.assert_close(z[:, 3], torch.full((1000,), 1e-3), atol=1e-6, rtol=0)


def test_statistics_travel_in_the_state_dict():
    norm = Normalizer(4)
    norm.fit(sample_data())
    other = Normalizer(4)
    other.load_state_dict(norm.state_dict())
    torch.testing.assert_close(other.mean, norm.mean)
    torch.testing.assert_close(other.std, norm.std)
