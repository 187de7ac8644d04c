"""The planning objective of the pixel world model, written for speed: the predicted return of every
candidate action sequence, rolled through the RSSM's prior with no autograd and nothing stored.

    returns = imagined_returns(rssm, reward_head, state, actions)   # state (B), actions (B, N, L, A) -> (B, N)
    returns = imagined_returns(rssm, reward_head, state, actions, value_head=v, value_weight=discount**L)

It computes exactly what ``RSSM.imagine`` followed by the reward head computes (tests/test_rssm_paths.py checks
every path against that reference step), on the weights the RSSM's and the reward head's named accessors give;
their ``check_layout`` refuses, when they are built, layers other than the ones computed here (Linear, ELU and
torch's GRU cell). What makes it faster on a CPU is:

- the action's share of the transition's input layer is computed for the whole horizon in one matmul;
- the prior's std is only computed when z is sampled (planning on the mean needs the mean only), and then
  with the mean in one matmul;
- the concatenations [z, a] and [h, z] become two matmuls into one output, never a copied input;
- a matmul whose addend is a whole matrix (the action's share, the sampled prior's offsets) accumulates into
  it in place: ``addmm`` out of place would first copy the addend into its output (one more kernel on a GPU);
- the ELU and the GRU's tanh avoid ``expm1``/``tanh``, which this torch's CPU kernels do not vectorise
  (F.elu: 7.2 ms on 8000 x 200 with 2 threads; exp - 1: 1.4 ms), and work in place;
- on a CPU the B * N rollouts run in chunks of ``worldmodel.cpu.CPU_CHUNK_ROWS``: 2000 x 600 GRU gates
  (4.8 MB) stay in cache; 8000 rows do not.

On a GPU a planner call is a chain of small dependent kernels, and their number, not their arithmetic, sets
its time (one CUDA graph of PlaNet's CEM: ~14 ms for 1 env on an H100, ~4.5 us a kernel). There the rollout
takes ``_rollout_returns_stacked``: torch's fused GRU cell and the reward head once on the stacked rollout.
Kernels a step: 8 on the prior mean (against 21) and 10 sampled (against 26: the noise of the whole horizon
comes from one draw, and the prior's min_std enters through the bias of its output layer), as CUDA
dispatches the ops; not yet timed on a GPU.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange, repeat
from torch import Tensor, nn

from worldmodel.cpu import row_chunks
from worldmodel.models.reward_head import RewardHead
from worldmodel.models.rssm import RSSM, RSSMState


def elu_(x: Tensor) -> Tensor:
    """ELU in place (no autograd): exp(min(x, 0)) - 1 + max(x, 0), with torch's own ELU on a GPU."""
    if x.device.type != "cpu":
        return F.elu_(x)
    negative = torch.exp(x.clamp(max=0.0)).sub_(1.0)
    return x.clamp_(min=0.0).add_(negative)


def tanh_(x: Tensor) -> Tensor:
    """tanh in place (no autograd): 2 sigmoid(2x) - 1 on a CPU, where sigmoid is vectorised and tanh is not."""
    if x.device.type != "cpu":
        return x.tanh_()
    return x.mul_(2.0).sigmoid_().mul_(2.0).sub_(1.0)


class _Weights:
    """The weights the rollout reads, split where a concatenated input would otherwise be built, all from the
    parts' named accessors (views: no copies)."""

    def __init__(self, rssm: RSSM, head: RewardHead) -> None:
        S, D = rssm.state_size, rssm.belief_size
        transition_z, self.transition_a, self.transition_b = rssm.transition_weights()  # on [z, a]
        self.transition_z = transition_z.t()  # (S, H); transition_a (H, A), for F.linear over the horizon
        gru = rssm.gru  # torch's GRUCell: rows reset, update, new
        self.gru_ih, self.gru_hh = gru.weight_ih.t(), gru.weight_hh.t()  # (H, 3D), (D, 3D)
        self.gru_bih, self.gru_bhh = gru.bias_ih, gru.bias_hh  # (3D,)
        prior_hidden, prior_out = rssm.prior_hidden, rssm.prior_out
        self.prior_w, self.prior_b = prior_hidden.weight.t(), prior_hidden.bias  # (D, H), (H,)
        mean_w, self.mean_b = rssm.prior_mean_weights()  # (S, H), (S,)
        self.mean_w = mean_w.t()  # (H, S)
        self.prior_out_w, self.prior_out_b = prior_out.weight.t(), prior_out.bias  # (H, 2S), (2S,): mean, std
        self.std_activation = rssm.std_activation  # std = std_activation(raw std) + min_std
        self.gru_cell_weights = (gru.weight_ih, gru.weight_hh, gru.bias_ih, gru.bias_hh)  # torch.gru_cell's order
        reward_h, reward_z, self.reward_b1 = head.input_weights()  # on [h, z]: (H, D), (H, S), (H,)
        self.reward_h, self.reward_z = reward_h.t(), reward_z.t()  # (D, H), (S, H)
        hidden, output = head.hidden_layer, head.output_layer  # Linear(H -> H), Linear(H -> 1)
        self.reward_w2, self.reward_b2 = hidden.weight.t(), hidden.bias  # (H, H), (H,)
        self.reward_w3, self.reward_b3 = output.weight[0], output.bias  # (H,), (1,)
        self.min_std = rssm.min_std
        self.belief_size, self.state_size = D, S


def _prior_noise(w: _Weights, L: int, h: Tensor, sample: bool, generator: torch.Generator | None):
    """-> (noise (L, R, S), offsets (L, R, 2S)) for a sampled rollout of L steps from h (R, D), else (None, None).

    The noise of every step comes from one draw. ``offsets`` replace the bias of the prior's output layer:
    [mean bias + min_std * noise, std bias], so that z = mean + (softplus(s) + min_std) * noise takes one
    matmul, one softplus and one addcmul a step (two kernels fewer a step on a GPU)."""
    if not sample:
        return None, None
    S, R = w.state_size, h.shape[0]
    noise = torch.randn((L, R, S), device=h.device, dtype=h.dtype, generator=generator)  # (L, R, S)
    offsets = torch.empty((L, R, 2 * S), device=h.device, dtype=h.dtype)  # (L, R, 2S)
    torch.add(w.prior_out_b[:S], noise, alpha=w.min_std, out=offsets[..., :S])
    offsets[..., S:] = w.prior_out_b[S:]
    return noise, offsets


def _prior_z(w: _Weights, hidden: Tensor, t: int, noise: Tensor | None, offsets: Tensor | None) -> Tensor:
    """The prior's hidden layer (R, H) at step t -> z (R, S): its mean when ``noise`` is None, else a sample
    with step t of ``_prior_noise``'s noise and offsets (the offsets' step t is overwritten)."""
    if noise is None:
        return torch.addmm(w.mean_b, hidden, w.mean_w)  # the mean only: no std to compute
    S = w.state_size
    stats = offsets[t].addmm_(hidden, w.prior_out_w)  # (R, 2S): mean + min_std * noise, pre-softplus std
    return torch.addcmul(stats[:, :S], w.std_activation(stats[:, S:]), noise[t])


def _rollout_returns(
    w: _Weights, h: Tensor, z: Tensor, actions: Tensor, sample: bool, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """h (R, D), z (R, S), actions (L, R, A) -> summed predicted rewards (R,), and the last h (R, D), z (R, S)."""
    L, D = actions.shape[0], w.belief_size
    action_in = F.linear(actions, w.transition_a, w.transition_b)  # (L, R, H): the whole horizon at once
    noise, offsets = _prior_noise(w, L, h, sample, generator)  # (L, R, S), (L, R, 2S), or None
    returns = torch.zeros(h.shape[0], device=h.device, dtype=h.dtype)  # (R,)
    for t in range(L):
        x = elu_(action_in[t].addmm_(z, w.transition_z))  # (R, H)
        gates_x = torch.addmm(w.gru_bih, x, w.gru_ih)  # (R, 3D): reset, update, new
        gates_h = torch.addmm(w.gru_bhh, h, w.gru_hh)  # (R, 3D)
        reset = gates_x[:, :D].add_(gates_h[:, :D]).sigmoid_()  # (R, D)
        update = gates_x[:, D : 2 * D].add_(gates_h[:, D : 2 * D]).sigmoid_()  # (R, D)
        new = tanh_(gates_x[:, 2 * D :].addcmul_(reset, gates_h[:, 2 * D :]))  # (R, D)
        h = torch.addcmul(new, update, h - new)  # (R, D): (1 - u) n + u h
        hidden = elu_(torch.addmm(w.prior_b, h, w.prior_w))  # (R, H)
        z = _prior_z(w, hidden, t, noise, offsets)  # (R, S)
        r = torch.addmm(w.reward_b1, h, w.reward_h).addmm_(z, w.reward_z)  # (R, H)
        r = elu_(torch.addmm(w.reward_b2, elu_(r), w.reward_w2))  # (R, H)
        returns = returns.addmv_(r, w.reward_w3)  # (R,)
    return returns + L * w.reward_b3, h, z  # the last layer's bias, once per step


def _rollout_returns_stacked(
    w: _Weights, h: Tensor, z: Tensor, actions: Tensor, sample: bool, generator: torch.Generator | None
) -> tuple[Tensor, Tensor, Tensor]:
    """``_rollout_returns`` in the fewest kernels a step (for a GPU): h (R, D), z (R, S), actions (L, R, A) ->
    (R,), and the last h (R, D), z (R, S).

    The same noise as ``_rollout_returns``: one (L, R, S) draw from ``generator``."""
    L = actions.shape[0]
    action_in = F.linear(actions, w.transition_a, w.transition_b)  # (L, R, H): the whole horizon at once
    noise, offsets = _prior_noise(w, L, h, sample, generator)  # (L, R, S), (L, R, 2S), or None
    beliefs, states = [], []
    for t in range(L):
        x = F.elu(action_in[t].addmm_(z, w.transition_z))  # (R, H)
        h = torch.gru_cell(x, h, *w.gru_cell_weights)  # (R, D): two matmuls and one fused kernel on a GPU
        hidden = F.elu(torch.addmm(w.prior_b, h, w.prior_w))  # (R, H)
        z = _prior_z(w, hidden, t, noise, offsets)  # (R, S)
        beliefs.append(h)
        states.append(z)
    h_all = torch.cat(beliefs)  # (L*R, D), step-major
    z_all = torch.cat(states)  # (L*R, S)
    r = F.elu(torch.addmm(w.reward_b1, h_all, w.reward_h).addmm_(z_all, w.reward_z))  # (L*R, H)
    r = F.elu(torch.addmm(w.reward_b2, r, w.reward_w2))  # (L*R, H)
    rewards = torch.addmv(w.reward_b3, r, w.reward_w3).view(L, -1)  # (L, R)
    return rewards.sum(dim=0), h, z  # (R,), (R, D), (R, S)


@torch.no_grad()
def imagined_returns(
    rssm: RSSM,
    head: RewardHead,
    state: RSSMState,
    actions: Tensor,
    *,
    sample: bool = False,
    generator: torch.Generator | None = None,
    value_head: nn.Module | None = None,
    value_weight: float = 1.0,
) -> Tensor:
    """state (B), candidate actions (B, N, L, A) -> the predicted return of each candidate (B, N) under ``rssm``'s
    prior and ``head``'s rewards, plus ``value_weight * value_head(h_L, z_L)`` at the last imagined state when
    there is a value head (``model.value``; its forward, once per rollout).

    z follows the prior mean, or is sampled from the prior with ``generator`` when ``sample``."""
    B, N, L, _ = actions.shape
    weights = _Weights(rssm, head)
    h = repeat(state.h, "b d -> (b n) d", n=N)  # (B*N, D)
    z = repeat(state.z, "b s -> (b n) s", n=N)  # (B*N, S)
    steps = rearrange(actions, "b n l a -> l (b n) a")  # (L, B*N, A)
    rollout = _rollout_returns if actions.device.type == "cpu" else _rollout_returns_stacked
    chunks = []
    for rows in row_chunks(B * N, actions.device):
        returns, last_h, last_z = rollout(weights, h[rows], z[rows], steps[:, rows], sample, generator)  # (R,) ...
        if value_head is not None:
            returns = returns.add_(value_head(last_h, last_z), alpha=value_weight)  # (R,)
        chunks.append(returns)
    returns = chunks[0] if len(chunks) == 1 else torch.cat(chunks)  # (B*N,)
    return rearrange(returns, "(b n) -> b n", b=B)
