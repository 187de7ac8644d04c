"""The ensemble's kernels (stacked baddbmm, per-member addmm) against per-member nn.Linear."""

import pytest
import torch
from torch import nn

from worldmodel.models.ensemble import EnsembleLinear, EnsembleMLP

IN, OUT, E = 23, 18, 5


def member_as_sequential(mlp: EnsembleMLP, e: int) -> nn.Sequential:
    """Member ``e`` of the ensemble rebuilt from plain nn.Linear layers: the reference."""
    modules: list[nn.Module] = []
    for i, layer in enumerate(mlp.layers):
        in_size, out_size = layer.weight.shape[1:]
        linear = nn.Linear(in_size, out_size)
        with torch.no_grad():
            linear.weight.copy_(layer.weight[e].T)  # nn.Linear stores (out, in)
            linear.bias.copy_(layer.bias[e, 0])
        modules.append(linear)
        if i < len(mlp.layers) - 1:
            modules.append(nn.ReLU())
    return nn.Sequential(*modules)


def reference_forward(mlp: EnsembleMLP, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return torch.stack([member_as_sequential(mlp, e)(x[e]) for e in range(mlp.ensemble_size)])


@pytest.mark.parametrize("kernel", ["auto", "stacked", "per_member"])
@pytest.mark.parametrize("batch", [1, 7, 300])
@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_every_inference_kernel_matches_per_member_linear(kernel, batch, num_layers):
    torch.manual_seed(0)
    mlp = EnsembleMLP(IN, OUT, ensemble_size=E, hidden_size=32, num_layers=num_layers, kernel=kernel)
    x = torch.randn(E, batch, IN)  # (E, B, in)
    with torch.no_grad():
        y = mlp(x)
    assert y.shape == (E, batch, OUT)
    torch.testing.assert_close(y, reference_forward(mlp, x), rtol=1e-5, atol=1e-5)


def test_kernels_agree_at_homework_sizes():
    torch.manual_seed(1)
    mlp = EnsembleMLP(IN, OUT, ensemble_size=E, hidden_size=250, num_layers=2)
    x = torch.randn(E, 1000, IN)
    outputs = {}
    with torch.no_grad():
        for kernel in ("stacked", "per_member"):
            mlp.kernel = kernel
            outputs[kernel] = mlp(x)
    torch.testing.assert_close(outputs["stacked"], outputs["per_member"], rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(outputs["per_member"], reference_forward(mlp, x), rtol=1e-4, atol=1e-5)


def test_auto_picks_per_member_for_cpu_inference_and_stacked_for_training():
    mlp = EnsembleMLP(IN, OUT, ensemble_size=E, hidden_size=16)
    x = torch.randn(E, 4, IN)
    assert mlp._chosen_kernel(x) == "stacked"  # grad mode on, parameters require grad
    with torch.no_grad():
        assert mlp._chosen_kernel(x) == "per_member"
    with torch.inference_mode():
        assert mlp._chosen_kernel(x) == "per_member"
    mlp.kernel = "per_member"
    assert mlp._chosen_kernel(x) == "stacked", "a forced inference kernel must not break training"


def test_training_path_gradients_flow_to_every_member_and_match_reference():
    torch.manual_seed(2)
    mlp = EnsembleMLP(IN, OUT, ensemble_size=E, hidden_size=16, num_layers=2, kernel="per_member")
    x = torch.randn(E, 9, IN)
    loss = mlp(x).pow(2).sum()
    loss.backward()

    for e in range(E):
        reference = member_as_sequential(mlp, e)
        reference(x[e]).pow(2).sum().backward()
        for layer, linear in zip(mlp.layers, [m for m in reference if isinstance(m, nn.Linear)]):
            assert layer.weight.grad[e].abs().sum() > 0
            torch.testing.assert_close(layer.weight.grad[e], linear.weight.grad.T, rtol=1e-4, atol=1e-6)
            torch.testing.assert_close(layer.bias.grad[e, 0], linear.bias.grad, rtol=1e-4, atol=1e-6)


def test_members_are_independent():
    torch.manual_seed(3)
    mlp = EnsembleMLP(IN, OUT, ensemble_size=E, hidden_size=16)
    x = torch.randn(E, 5, IN)
    changed = x.clone()
    changed[2] += 1.0  # only member 2's input moves
    for kernel in ("stacked", "per_member"):
        mlp.kernel = kernel
        with torch.no_grad():
            delta = (mlp(changed) - mlp(x)).abs().sum(dim=(1, 2))  # (E,)
        assert delta[2] > 0
        assert torch.all(delta[[0, 1, 3, 4]] == 0), (kernel, delta)


def test_ensemble_linear_shapes_and_init_bound():
    layer = EnsembleLinear(IN, 7, ensemble_size=3)
    assert layer(torch.randn(3, 11, IN)).shape == (3, 11, 7)
    assert layer.weight.abs().max() <= 1 / IN**0.5
