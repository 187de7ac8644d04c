"""One RSSM and one reward head: every fast path (the planner's CPU rollout, its stacked GPU rollout run here on
CPU tensors, ``imagined_returns`` around them, the sequence filter ``observe``) computes what the reference
modules compute, on the same weights and the same noise; parts whose layers differ from what the fast paths
compute are refused when they are built; and the state-dict keys of saved runs still load."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from worldmodel.models.latent_planning import _rollout_returns, _rollout_returns_stacked, _Weights, imagined_returns
from worldmodel.models.layout import LayoutError
from worldmodel.models.reward_head import RewardHead
from worldmodel.models.rssm import RSSM, RSSMState
from worldmodel.models.world_model import WorldModel, WorldModelConfig

# Every size different, so that a split at the wrong size or a transposed weight cannot go unnoticed.
A, D, S, H, E = 3, 12, 5, 16, 20


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def random_parts() -> tuple[RSSM, RewardHead]:
    """An RSSM and a reward head with every weight and bias drawn N(0, 0.3^2): pre-activations of either sign
    and order 1, so that every ELU, gate and softplus matters."""
    torch.manual_seed(0)
    rssm = RSSM(action_size=A, belief_size=D, state_size=S, hidden_size=H, embedding_size=E, min_std=0.1)
    head = RewardHead(belief_size=D, state_size=S, hidden_size=H)
    with torch.no_grad():
        for p in (*rssm.parameters(), *head.parameters()):
            p.copy_(torch.randn(p.shape) * 0.3)
    return rssm, head


def reference_returns(rssm: RSSM, head: RewardHead, state: RSSMState, actions: torch.Tensor,
                      noise: torch.Tensor | None) -> torch.Tensor:
    """The reference step, module by module: state (R), actions (R, L, A) -> summed rewards (R,). z is the prior
    mean (through ``RSSM.imagine``), or mean + std * noise[t] with noise (L, R, S)."""
    if noise is None:
        imagined = rssm.imagine(state, actions)  # (R, L)
        return head(imagined.h, imagined.z).sum(dim=1)
    total = torch.zeros(actions.shape[0])
    for t in range(actions.shape[1]):
        h, prior = rssm.transition(state, actions[:, t])
        state = RSSMState(h, prior.mean + prior.std * noise[t])
        total = total + head(state.h, state.z)
    return total


@pytest.mark.parametrize("sample", [False, True], ids=["prior-mean", "sampled"])
@torch.no_grad()
def test_every_path_computes_the_reference_step(sample: bool) -> None:
    """The planner's rollouts (CPU, stacked GPU one on CPU tensors, and ``imagined_returns`` that picks one per
    device) and the sequence filter ``observe`` against the reference modules (``RSSM.transition``/``imagine``,
    the reward head's forward, ``observe_step``) on one set of weights, z on the prior mean or sampled with the
    same noise (the fast paths draw it in one (L, R, S) draw from the generator)."""
    rssm, head = random_parts()
    B, N, L = 2, 3, 4
    R = B * N
    start = RSSMState(h=torch.randn(B, D), z=torch.randn(B, S))
    actions = torch.rand(B, N, L, A) * 2 - 1  # (B, N, L, A)
    rows = start.map(lambda x: x.repeat_interleave(N, dim=0))  # (R): candidate n of env b is row b * N + n
    per_row = actions.reshape(R, L, A)  # (R, L, A)
    noise = torch.randn(L, R, S, generator=torch.Generator().manual_seed(3)) if sample else None
    expected = reference_returns(rssm, head, rows, per_row, noise)  # (R,)

    weights = _Weights(rssm, head)
    steps = per_row.transpose(0, 1)  # (L, R, A)
    paths = {
        "cpu": _rollout_returns(weights, rows.h, rows.z, steps, sample, torch.Generator().manual_seed(3))[0],
        "stacked": _rollout_returns_stacked(weights, rows.h, rows.z, steps, sample, torch.Generator().manual_seed(3))[0],
        "imagined_returns": imagined_returns(rssm, head, start, actions, sample=sample,
                                             generator=torch.Generator().manual_seed(3)).reshape(R),
    }
    assert expected.abs().max() > 0.5  # rewards of order 1: the tolerance below is small against them
    for name, got in paths.items():
        torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-5, msg=lambda m, name=name: f"{name}: {m}")

    # The sequence filter against the one-step filter, with a reset inside the chunk.
    T = 6
    embed, action = torch.randn(B, T, E), torch.rand(B, T, A) * 2 - 1
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[0, 3] = True
    states, priors, posts = rssm.observe(embed, action, is_first, start, sample=sample,
                                         generator=torch.Generator().manual_seed(7))
    z_noise = torch.randn(T, B, S, generator=torch.Generator().manual_seed(7))  # observe's one (T, B, S) draw
    state = start
    for t in range(T):
        stepped, prior, post = rssm.observe_step(state, action[:, t], embed[:, t], is_first[:, t], sample=False)
        state = RSSMState(stepped.h, post.mean + post.std * z_noise[t] if sample else post.mean)
        pairs = [(states.h[:, t], state.h), (states.z[:, t], state.z), (priors.mean[:, t], prior.mean),
                 (priors.std[:, t], prior.std), (posts.mean[:, t], post.mean), (posts.std[:, t], post.std)]
        for got, want in pairs:
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def layer_changes() -> dict[str, tuple[str, object]]:
    """Changes to a built part that its fast paths would not compute: the part's name in the error, and the change."""

    class MyGRUCell(nn.GRUCell):
        """A subclass may compute anything: only torch's own GRUCell is what the fast paths compute."""

    def insert(seq: nn.Sequential, index: int, module: nn.Module) -> None:
        seq.insert(index, module)

    def set_layer(seq: nn.Sequential, index: int, module: nn.Module) -> None:
        seq[index] = module

    return {
        "layernorm in the prior": ("RSSM.prior_net", lambda r, h: insert(r.prior_net, 1, nn.LayerNorm(H))),
        "tanh in the transition": ("RSSM.transition_input", lambda r, h: set_layer(r.transition_input, 1, nn.Tanh())),
        "elu alpha in the posterior": ("RSSM.posterior_net", lambda r, h: set_layer(r.posterior_net, 1, nn.ELU(0.5))),
        "wider prior output": ("RSSM.prior_net", lambda r, h: set_layer(r.prior_net, 2, nn.Linear(H, 2 * S + 1))),
        "another gru cell": ("RSSM.gru", lambda r, h: setattr(r, "gru", MyGRUCell(H, D))),
        "silu in the reward head": ("RewardHead.net", lambda r, h: set_layer(h.net, 3, nn.SiLU())),
        "reward layer without bias": ("RewardHead.net", lambda r, h: set_layer(h.net, 2, nn.Linear(H, H, bias=False))),
        "extra reward layer": ("RewardHead.net", lambda r, h: h.net.append(nn.ELU())),
    }


@pytest.mark.parametrize("change", list(layer_changes()))
def test_layers_the_fast_paths_do_not_compute_are_refused(change: str) -> None:
    """``check_layout`` (run when a part is built) refuses a LayerNorm, another activation, another size, a GRU
    cell that is not torch's or a Linear without bias, naming the part and what its fast paths compute."""
    rssm, head = random_parts()
    rssm.check_layout()
    head.check_layout()
    name, apply = layer_changes()[change]
    apply(rssm, head)
    with pytest.raises(LayoutError, match=rf"^{name} is \[.*\], but its fast paths \(.*\) compute \["):
        (head if name.startswith("RewardHead") else rssm).check_layout()


def test_a_part_built_with_other_layers_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose RSSM is built with another activation stops at construction."""
    monkeypatch.setattr(nn, "ELU", lambda *args, **kwargs: nn.SiLU())
    with pytest.raises(LayoutError, match=r"RSSM.transition_input is \[Linear\(\d+ -> \d+\), SiLU\(\)\]"):
        WorldModel(WorldModelConfig(belief_size=D, state_size=S, hidden_size=H, embedding_size=32, cnn_depth=4), A)


def test_state_dict_keys_are_those_of_saved_runs() -> None:
    """Checkpoints and policy files of earlier runs hold these keys; the named parts are views of them."""
    model = WorldModel(WorldModelConfig(belief_size=D, state_size=S, hidden_size=H, embedding_size=32, cnn_depth=4), A)
    keys = {key for key in model.state_dict() if key.startswith(("rssm.", "reward_head."))}
    linears = ["rssm.transition_input.0", "rssm.prior_net.0", "rssm.prior_net.2", "rssm.posterior_net.0",
               "rssm.posterior_net.2", "reward_head.net.0", "reward_head.net.2", "reward_head.net.4"]
    gru = {f"rssm.gru.{name}" for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")}
    assert keys == {f"{layer}.{p}" for layer in linears for p in ("weight", "bias")} | gru
    rssm, head = model.rssm, model.reward_head
    named = [rssm.transition_layer, rssm.prior_hidden, rssm.prior_out, rssm.posterior_hidden, rssm.posterior_out,
             head.input_layer, head.hidden_layer, head.output_layer]
    state = model.state_dict()
    for layer, key in zip(named, linears):
        assert layer.weight.data_ptr() == state[f"{key}.weight"].data_ptr(), key
