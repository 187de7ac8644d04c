"""PlaNet's recurrent state-space model (RSSM): h = deterministic GRU belief, z = diagonal-Gaussian
stochastic state.

Time indices follow the replay's aligned steps (step t holds o_t, the action a_t that led to it
and the reward r_t received on arriving there):

    step:          t-1                          t
    obs:           o_{t-1}                      o_t ──encoder──> e_t
    action:                     a_t ───────────┐ (led from o_{t-1} to o_t, stored at step t)
    belief h:      h_{t-1} ──GRU([z_{t-1}, a_t])──> h_t
    state z:       z_{t-1}                      prior      p(z_t | h_t)          (imagine / transition)
                                                posterior  q(z_t | h_t, e_t)     (observe / filter)
    reward:                                     r_t <── reward head(h_t, z_t)

Where ``is_first_t`` is true the previous (h, z) and a_t are replaced by the initial state (zeros)
before the transition, so a chunk that spans two episodes never leaks the old one into the new.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Sequence, TypeVar

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from worldmodel.models.layout import check_layers, elu_mlp, gru_cell, split_input

Struct = TypeVar("Struct", bound="_TensorStruct")


class _TensorStruct:
    """Shared helpers for small frozen dataclasses of tensors that share their leading (batch) dims."""

    def map(self: Struct, fn: Callable[[Tensor], Tensor]) -> Struct:
        return type(self)(*(fn(getattr(self, f.name)) for f in dataclasses.fields(self)))

    def __getitem__(self: Struct, index) -> Struct:
        """Index the leading dims, e.g. ``states[:, t]`` for (B, T) -> (B)."""
        return self.map(lambda x: x[index])

    def detach(self: Struct) -> Struct:
        return self.map(Tensor.detach)

    def to(self: Struct, device: torch.device | str) -> Struct:
        return self.map(lambda x: x.to(device))

    def reshape(self: Struct, *batch_shape: int) -> Struct:
        """New leading dims, e.g. ``reshape(B * T)`` for (B, T) -> (B*T)."""
        return self.map(lambda x: x.reshape(*batch_shape, x.shape[-1]))

    @property
    def batch_shape(self) -> torch.Size:
        first = getattr(self, dataclasses.fields(self)[0].name)
        return first.shape[:-1]

    @classmethod
    def stack(cls: type[Struct], items: Sequence[Struct], dim: int = 1) -> Struct:
        """Stack along a new leading dim: T states (B) -> (B, T) with the default ``dim=1``."""
        return cls(*(torch.stack([getattr(x, f.name) for x in items], dim=dim) for f in dataclasses.fields(cls)))


@dataclass(frozen=True)
class RSSMState(_TensorStruct):
    """The latent state: h (..., D) deterministic belief, z (..., S) stochastic state."""

    h: Tensor
    z: Tensor

    @property
    def features(self) -> Tensor:
        """[h, z] concatenated: (..., D + S), what the decoder and the reward head read."""
        return torch.cat([self.h, self.z], dim=-1)


@dataclass(frozen=True)
class DiagGaussian(_TensorStruct):
    """A diagonal Gaussian over z: mean (..., S), std (..., S)."""

    mean: Tensor
    std: Tensor

    def sample(self, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised sample (..., S): gradients flow to mean and std."""
        noise = torch.randn(self.mean.shape, device=self.mean.device, dtype=self.mean.dtype, generator=generator)
        return self.mean + self.std * noise


def kl_divergence(p: DiagGaussian, q: DiagGaussian) -> Tensor:
    """KL(p || q) summed over the state dim: (...). Exactly zero when p and q are the same."""
    variance_ratio = (p.std / q.std) ** 2  # (..., S)
    mean_term = ((p.mean - q.mean) / q.std) ** 2  # (..., S)
    kl = 0.5 * (variance_ratio + mean_term - 1 - torch.log(variance_ratio))  # (..., S)
    return kl.sum(dim=-1)


def free_nats_kl(kl: Tensor, free_nats: float) -> Tensor:
    """Mean of ``max(kl, free_nats)`` over all steps (PlaNet): below ``free_nats`` the KL gets no gradient,
    which leaves the posterior free to carry that much information about each frame."""
    return torch.clamp(kl, min=free_nats).mean()


class RSSM(nn.Module):
    """Transition (prior) and filter (posterior) of the latent state; see the module docstring for indices.

    Its layers, with H the hidden size, A the action size and E the embedding size. The state-dict keys (e.g.
    ``prior_net.2.weight``) are those of every saved run; each Linear is also reachable by the name in brackets:

        transition_input  [transition_layer] Linear([z, a]: S + A -> H), ELU      -> x_t, from z_{t-1} and a_t
        gru               torch's GRUCell(H -> D)                                  -> h_t, from x_t and h_{t-1}
        prior_net         [prior_hidden] Linear(D -> H), ELU, [prior_out] Linear(H -> 2S)
                                                                   -> [mean, raw std] of p(z_t | h_t)
        posterior_net     [posterior_hidden] Linear([h, e]: D + E -> H), ELU, [posterior_out] Linear(H -> 2S)
                                                                   -> [mean, raw std] of q(z_t | h_t, e_t)

    with std = ``std_activation``(raw std) + min_std. The fast paths (``observe`` here, ``latent_planning``'s
    rollouts, which also write out torch's GRU cell equations) compute exactly this from the weights these names
    and the split accessors below give; ``check_layout`` refuses other layers when the RSSM is built, so a change
    here either reaches them or stops with an error (tests/test_rssm_paths.py checks every path against it).
    """

    std_activation = staticmethod(F.softplus)
    """raw std -> std - min_std, in every path (the fast ones add min_std through a bias)."""

    def __init__(
        self,
        *,
        action_size: int,
        belief_size: int,
        state_size: int,
        hidden_size: int,
        embedding_size: int,
        min_std: float,
    ) -> None:
        super().__init__()
        self.transition_input = nn.Sequential(nn.Linear(state_size + action_size, hidden_size), nn.ELU())
        self.gru = nn.GRUCell(hidden_size, belief_size)
        self.prior_net = nn.Sequential(
            nn.Linear(belief_size, hidden_size), nn.ELU(), nn.Linear(hidden_size, 2 * state_size)
        )
        self.posterior_net = nn.Sequential(
            nn.Linear(belief_size + embedding_size, hidden_size), nn.ELU(), nn.Linear(hidden_size, 2 * state_size)
        )
        self.action_size = action_size
        self.belief_size = belief_size
        self.state_size = state_size
        self.hidden_size = hidden_size
        self.embedding_size = embedding_size
        self.min_std = min_std
        self.check_layout()

    def check_layout(self) -> None:
        """Refuse (``LayoutError``, saying what differs) layers other than the class docstring's: the fast
        paths would compute those, not these."""
        S, D, H, A, E = self.state_size, self.belief_size, self.hidden_size, self.action_size, self.embedding_size
        fast = "RSSM.observe, models/latent_planning.py"
        check_layers("RSSM.transition_input", self.transition_input, elu_mlp(S + A, H, elu_last=True), fast)
        check_layers("RSSM.gru", [self.gru], [gru_cell(H, D)], "models/latent_planning.py")
        check_layers("RSSM.prior_net", self.prior_net, elu_mlp(D, H, 2 * S), "models/latent_planning.py")
        check_layers("RSSM.posterior_net", self.posterior_net, elu_mlp(D + E, H, 2 * S), "RSSM.observe")

    # ---- the layers by name: the only place that knows their positions ----------------------------------

    @property
    def transition_layer(self) -> nn.Linear:
        """Linear([z, a] -> H), followed by ELU."""
        return self.transition_input[0]

    @property
    def prior_hidden(self) -> nn.Linear:
        """Linear(h -> H), followed by ELU."""
        return self.prior_net[0]

    @property
    def prior_out(self) -> nn.Linear:
        """Linear(H -> 2S): the prior's [mean, raw std]."""
        return self.prior_net[2]

    @property
    def posterior_hidden(self) -> nn.Linear:
        """Linear([h, e] -> H), followed by ELU."""
        return self.posterior_net[0]

    @property
    def posterior_out(self) -> nn.Linear:
        """Linear(H -> 2S): the posterior's [mean, raw std]."""
        return self.posterior_net[2]

    def transition_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """The transition layer split by its input [z, a]: W_z (H, S), W_a (H, A), bias (H,)."""
        return split_input(self.transition_layer, self.state_size)

    def posterior_weights(self) -> tuple[Tensor, Tensor, Tensor]:
        """The posterior's hidden layer split by its input [h, e]: W_h (H, D), W_e (H, E), bias (H,)."""
        return split_input(self.posterior_hidden, self.belief_size)

    def prior_mean_weights(self) -> tuple[Tensor, Tensor]:
        """The rows of the prior's output layer that give the mean: weight (S, H), bias (S,)."""
        layer, S = self.prior_out, self.state_size
        return layer.weight[:S], layer.bias[:S]

    def initial_state(self, batch_size: int, device: torch.device | str | None = None) -> RSSMState:
        """All-zeros state (B): what every episode starts from."""
        device = device if device is not None else self.gru.weight_hh.device
        return RSSMState(
            h=torch.zeros(batch_size, self.belief_size, device=device),
            z=torch.zeros(batch_size, self.state_size, device=device),
        )

    def _gaussian(self, params: Tensor) -> DiagGaussian:
        mean, raw_std = params.chunk(2, dim=-1)  # (..., S) each
        # The floor keeps the KL finite and stops the posterior collapsing to a point early on.
        return DiagGaussian(mean, self.std_activation(raw_std) + self.min_std)

    def transition(self, state: RSSMState, action: Tensor) -> tuple[Tensor, DiagGaussian]:
        """(h_{t-1}, z_{t-1}) (B), a_t (B, A) -> h_t (B, D) and the prior p(z_t | h_t) (B)."""
        x = self.transition_input(torch.cat([state.z, action], dim=-1))  # (B, hidden)
        h = self.gru(x, state.h)  # (B, D)
        return h, self._gaussian(self.prior_net(h))

    def posterior(self, h: Tensor, embed: Tensor) -> DiagGaussian:
        """h_t (B, D), e_t (B, E) -> q(z_t | h_t, e_t) (B)."""
        return self._gaussian(self.posterior_net(torch.cat([h, embed], dim=-1)))

    @staticmethod
    def reset_where(state: RSSMState, action: Tensor, is_first: Tensor) -> tuple[RSSMState, Tensor]:
        """Replace the state (B) and action (B, A) by the initial (zero) ones where is_first (B,) is true."""
        keep = (~is_first.bool()).to(action.dtype)[:, None]  # (B, 1)
        return state.map(lambda x: x * keep), action * keep

    def observe_step(
        self,
        state: RSSMState,
        action: Tensor,
        embed: Tensor,
        is_first: Tensor,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[RSSMState, DiagGaussian, DiagGaussian]:
        """One filter step: state (B), a_t (B, A), e_t (B, E), is_first (B,) -> (posterior state, prior, posterior);
        z is sampled from the posterior with ``generator`` (torch's global one if None)."""
        state, action = self.reset_where(state, action, is_first)
        h, prior = self.transition(state, action)
        post = self.posterior(h, embed)
        z = post.sample(generator) if sample else post.mean
        return RSSMState(h, z), prior, post

    def imagine_step(self, state: RSSMState, action: Tensor, *, sample: bool = False) -> tuple[RSSMState, DiagGaussian]:
        """One prior step: state (B), a_t (B, A) -> (prior state (B), prior (B))."""
        h, prior = self.transition(state, action)
        z = prior.sample() if sample else prior.mean
        return RSSMState(h, z), prior

    def observe(
        self,
        embed: Tensor,
        action: Tensor,
        is_first: Tensor,
        state: RSSMState | None = None,
        *,
        sample: bool = True,
        generator: torch.Generator | None = None,
    ) -> tuple[RSSMState, DiagGaussian, DiagGaussian]:
        """Filter a sequence: embed (B, T, E), action (B, T, A), is_first (B, T), state (B) or None (initial).

        Returns posterior states (B, T), priors (B, T) and posteriors (B, T): what ``observe_step`` gives step
        by step (a test checks it), with the z noise of all steps from one (T, B, S) draw from ``generator``.
        Only what the recurrence needs runs step by step, in the fewest ops (on a GPU each is a kernel in a
        chain of T): the actions' and the embeddings' shares of the input layers are computed for all steps
        at once, and the priors from all the beliefs at once after the loop.
        """
        B, T = embed.shape[:2]
        assert action.shape[:2] == (B, T) and is_first.shape == (B, T), (
            (B, T),
            {"action": tuple(action.shape), "is_first": tuple(is_first.shape)},
        )
        S = self.state_size
        state = self.initial_state(B, embed.device) if state is None else state
        keep = rearrange((~is_first.bool()).to(embed.dtype), "b t -> t b 1")  # (T, B, 1): 0 resets the state
        transition_z, transition_a, transition_b = self.transition_weights()  # (H, S), (H, A), (H,)
        posterior_h, posterior_e, posterior_b = self.posterior_weights()  # (H, D), (H, E), (H,)
        # [z, a] W + b = z W_z + (a W_a + b) and [h, e] W + b = h W_h + (e W_e + b): the second terms for all T.
        action_in = F.linear(rearrange(action, "b t a -> t b a") * keep, transition_a, transition_b)  # (T, B, H)
        embed_in = F.linear(rearrange(embed, "b t e -> t b e"), posterior_e, posterior_b)  # (T, B, H)
        transition_z, posterior_h = transition_z.t(), posterior_h.t()  # (S, H), (D, H)
        # unbind, not [t]: autograd then stacks the T step gradients once, where indexing would add T zero-filled
        # (T, B, H) gradients.
        action_in, embed_in = action_in.unbind(0), embed_in.unbind(0)  # T x (B, H) each
        noise = torch.randn((T, B, S), device=embed.device, dtype=embed.dtype, generator=generator) if sample else None
        h, z = state.h, state.z
        beliefs, states, posts = [], [], []
        for t in range(T):
            h, z = h * keep[t], z * keep[t]  # (B, D), (B, S)
            x = F.elu(torch.addmm(action_in[t], z, transition_z))  # (B, H)
            h = self.gru(x, h)  # (B, D)
            post = self._gaussian(self.posterior_out(F.elu(torch.addmm(embed_in[t], h, posterior_h))))  # (B)
            z = torch.addcmul(post.mean, post.std, noise[t]) if sample else post.mean  # (B, S)
            beliefs.append(h)
            states.append(z)
            posts.append(post)
        h_all = torch.stack(beliefs, dim=1)  # (B, T, D)
        priors = self._gaussian(self.prior_net(h_all))  # (B, T): the prior needs only h_t
        return RSSMState(h_all, torch.stack(states, dim=1)), priors, DiagGaussian.stack(posts)

    def imagine(self, state: RSSMState, actions: Tensor, *, sample: bool = False) -> RSSMState:
        """Roll the prior: state (B), actions (B, T, A) -> prior states (B, T), one per action."""
        states = []
        for t in range(actions.shape[1]):
            state, _ = self.imagine_step(state, actions[:, t], sample=sample)
            states.append(state)
        return RSSMState.stack(states)
