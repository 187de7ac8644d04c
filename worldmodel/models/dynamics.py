"""The state dynamics model: an ensemble of MLPs predicting normalised state deltas.

Shapes: E ensemble members, B batch, N candidates, L horizon, S observation size, A action size.

The model sees the observation dims ``model_input_dims`` (absolute positions hidden) and the
action, normalised; it predicts, for all S dims, the normalised delta (seed 001 eq. 4)

    target = (s' - s - mean_delta) / std_delta,        s' = s + target * std_delta + mean_delta

or, with ``delta_norm=False`` (seed 000's ablation), the difference of normalised states
``(s' - mean_s) / std_s - (s - mean_s) / std_s = (s' - s) / std_s``. Both are "a scale and a
shift on the delta", so one ``target_norm`` serves them.

Where the env's reward or termination is not known as a function of the state (dm_control, Humanoid),
the same MLPs learn them too: extra outputs after the S delta dims, a normalised reward (MSE) and a
termination logit (binary cross-entropy), trained on the same batches as the dynamics, so each member
is one network whose every output sees the same input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from worldmodel.config import check
from worldmodel.cpu import row_chunks
from worldmodel.envs.rewards import RewardFn
from worldmodel.envs.terminations import TerminationFn
from worldmodel.models.ensemble import EnsembleMLP
from worldmodel.models.normalizer import Normalizer


@dataclass
class EnsembleConfig:
    ensemble_size: int = 5
    """E, independently initialised members, each trained on its own batches."""
    hidden_size: int = 250
    """Units per hidden layer."""
    num_layers: int = 2
    """Hidden ReLU layers per member."""
    learning_rate: float = 1e-3
    """Adam step size."""
    delta_norm: bool = True
    """Predict normalised deltas (seed 001); false: predict the difference of normalised states (seed 000's ablation)."""
    reward: Literal["auto", "known", "learned"] = "auto"
    """known: the env's exact reward computed from predicted states; learned: a reward output of each member.
    auto: known where the project has the env's reward function, learned elsewhere (the saved config says which)."""
    termination: Literal["auto", "known", "learned"] = "auto"
    """When imagined rollouts end (no reward after that step): known: the env's own rule on predicted states
    (never, for envs that do not terminate); learned: a termination output of each member; auto: known where
    the project has the rule, learned elsewhere."""
    termination_penalty: float = 0.0
    """Subtracted from an imagined rollout's return at the step it terminates: ending a rollout only stops its
    reward, so within a short horizon a fall costs a few healthy rewards, less than the forward reward it buys;
    the penalty stands for the episode's lost future. 0: no penalty (rollouts only stop)."""

    def __post_init__(self) -> None:
        for name in ("ensemble_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            check(value >= 1, f"model.{name} must be >= 1, got {value}")
        check(self.learning_rate > 0, f"model.learning_rate must be > 0, got {self.learning_rate}")
        check(self.termination_penalty >= 0, f"model.termination_penalty must be >= 0, got {self.termination_penalty}")


def counted_reward(reward: Tensor, alive: Tensor, done: Tensor, penalty: float) -> Tensor:
    """What one imagined step adds to a rollout's return, (E, R) each: its reward while the rollout is alive, and
    minus ``penalty`` on the step it ends. The one rule for the planner's rollouts and the BPTT policy's."""
    # masked_fill, not a product: a diverged state after the end must not turn 0 x inf into NaN.
    counted = reward.masked_fill(~alive, 0.0)
    return counted - penalty * (done & alive) if penalty else counted


def contiguous_spans(dims: tuple[int, ...]) -> list[tuple[int, int, int]]:
    """Observation dims -> (input start, obs start, length) runs, so selecting them costs a
    copy per run instead of an index gather: (1, ..., 17, 19, 20) -> [(0, 1, 17), (17, 19, 2)]."""
    spans: list[tuple[int, int, int]] = []
    for position, dim in enumerate(dims):
        if spans and spans[-1][1] + spans[-1][2] == dim:
            start, source, length = spans[-1]
            spans[-1] = (start, source, length + 1)
        else:
            spans.append((position, dim, 1))
    return spans


class DynamicsEnsemble(nn.Module):
    """``predict`` next observations and ``imagine_returns`` of action sequences.

    >>> model = DynamicsEnsemble(EnsembleConfig(), obs_size=18, action_size=6, model_input_dims=tuple(range(1, 18)))
    >>> model.fit_normalizers(obs, actions, next_obs)                 # (n, S), (n, A), (n, S)
    >>> total, metrics = model.loss(obs, actions, next_obs)           # (E, B, S), (E, B, A), (E, B, S)
    >>> returns = model.imagine_returns(obs, actions, reward_fn)      # (B, S), (B, N, L, A) -> (B, N)
    """

    def __init__(
        self,
        cfg: EnsembleConfig,
        *,
        obs_size: int,
        action_size: int,
        model_input_dims: tuple[int, ...],
        plan_dtype: str = "float32",
        learn_reward: bool = False,
        learn_termination: bool = False,
    ) -> None:
        super().__init__()
        assert all(0 <= d < obs_size for d in model_input_dims), (obs_size, model_input_dims)
        self.cfg = cfg
        self.plan_dtype = plan_dtype
        """Precision of the MLP's matmuls in ``imagine_returns`` (the agent's ``planner.dtype``)."""
        self.obs_size = obs_size
        self.action_size = action_size
        self.ensemble_size = cfg.ensemble_size
        self.model_input_dims = tuple(model_input_dims)
        self.in_size = len(self.model_input_dims) + action_size
        self._spans = contiguous_spans(self.model_input_dims)
        self.register_buffer("input_index", torch.tensor(self.model_input_dims, dtype=torch.long), persistent=False)
        self.learn_reward = learn_reward
        self.learn_termination = learn_termination
        self.reward_index = obs_size  # output dims: S deltas, then [reward], then [termination logit]
        self.termination_index = obs_size + int(learn_reward)
        self.mlp = EnsembleMLP(
            self.in_size,
            obs_size + int(learn_reward) + int(learn_termination),
            ensemble_size=cfg.ensemble_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
        )
        self.input_norm = Normalizer(self.in_size)
        self.target_norm = Normalizer(obs_size)
        if learn_reward:
            self.reward_norm = Normalizer(1)

    # ---- normalisation ----------------------------------------------------------------------

    def model_input(self, obs: Tensor, actions: Tensor) -> Tensor:
        """(..., S), (..., A) -> the unnormalised model input (..., in)."""
        return torch.cat([obs.index_select(-1, self.input_index), actions], dim=-1)

    @torch.no_grad()
    def fit_normalizers(self, obs: Tensor, actions: Tensor, next_obs: Tensor, rewards: Tensor | None = None) -> None:
        """Fit input and target statistics to all the data (n, S), (n, A), (n, S) [, rewards (n,)]."""
        self.input_norm.fit(self.model_input(obs, actions))
        if self.learn_reward:
            assert rewards is not None, "a model that learns the reward needs the rewards to fit its normaliser"
            self.reward_norm.fit(rewards[:, None])
        if self.cfg.delta_norm:
            self.target_norm.fit(next_obs - obs)
        else:
            # (s' - s) / std_s: the state's scale, and no shift (the means cancel).
            self.target_norm.fit(obs)
            self.target_norm.mean.zero_()

    # ---- training ---------------------------------------------------------------------------

    def member_losses(
        self,
        obs: Tensor,
        actions: Tensor,
        next_obs: Tensor,
        rewards: Tensor | None = None,
        terminated: Tensor | None = None,
    ) -> dict[str, Tensor]:
        """Each member's losses on its own batch: (E, B, S), (E, B, A), (E, B, S) [, (E, B), (E, B)] ->
        {"dynamics": (E,), "reward": (E,), "termination": (E,)}, the last two only for the learned heads.
        dynamics: normalised-delta MSE; reward: normalised-reward MSE; termination: binary cross-entropy."""
        E, S = self.ensemble_size, self.obs_size
        assert obs.dim() == 3 and obs.shape[0] == E and actions.shape[:2] == obs.shape[:2], (E, obs.shape, actions.shape)
        x = self.input_norm.normalize(self.model_input(obs, actions))  # (E, B, in)
        out = self.mlp(x)  # (E, B, S [+1] [+1])
        target = self.target_norm.normalize(next_obs - obs)  # (E, B, S)
        losses = {"dynamics": (out[..., :S] - target).square().mean(dim=(1, 2))}  # (E,)
        if self.learn_reward:
            reward_target = self.reward_norm.normalize(rewards[..., None])[..., 0]  # (E, B)
            losses["reward"] = (out[..., self.reward_index] - reward_target).square().mean(dim=1)  # (E,)
        if self.learn_termination:
            logits = out[..., self.termination_index]  # (E, B)
            bce = F.binary_cross_entropy_with_logits(logits, terminated.to(logits.dtype), reduction="none")
            losses["termination"] = bce.mean(dim=1)  # (E,)
        return losses

    def loss(
        self,
        obs: Tensor,
        actions: Tensor,
        next_obs: Tensor,
        rewards: Tensor | None = None,
        terminated: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum over members (and heads) of the members' mean losses, so each member's gradient is that of its own
        loss. ``model/loss`` is the dynamics loss alone, comparable across configs."""
        losses = self.member_losses(obs, actions, next_obs, rewards, terminated)  # each (E,)
        dynamics = losses["dynamics"].detach()
        metrics = {"model/loss": dynamics.mean(), "model/loss_max_member": dynamics.max()}
        for head in ("reward", "termination"):
            if head in losses:
                metrics[f"model/{head}_loss"] = losses[head].detach().mean()
        return sum(loss.sum() for loss in losses.values()), metrics

    # ---- prediction -------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Next observations, unnormalised: (E, B, S), (E, B, A) -> (E, B, S)."""
        return self.predict_heads(obs, actions)[0]

    @torch.no_grad()
    def predict_heads(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """(E, B, S), (E, B, A) -> next observations (E, B, S), the learned reward (E, B) and the learned
        probability of termination (E, B) (None for a head the model does not have)."""
        return self.heads(obs, actions)

    def heads(self, obs: Tensor, actions: Tensor) -> tuple[Tensor, Tensor | None, Tensor | None]:
        """``predict_heads`` with autograd: gradients flow to the inputs (a BPTT policy's actions through
        the ensemble; ``worldmodel.agents.state_policies``)."""
        x = self.input_norm.normalize(self.model_input(obs, actions))  # (E, B, in)
        out = self.mlp(x)
        next_obs = obs + self.target_norm.denormalize(out[..., : self.obs_size])
        reward = self._learned_reward(out) if self.learn_reward else None
        terminated = torch.sigmoid(out[..., self.termination_index]) if self.learn_termination else None
        return next_obs, reward, terminated

    def _learned_reward(self, out: Tensor) -> Tensor:
        """The reward output of the MLP's (..., out) -> unnormalised reward (...)."""
        return out[..., self.reward_index] * self.reward_norm.std + self.reward_norm.mean

    @torch.no_grad()
    def imagine_returns(
        self,
        obs: Tensor,
        actions: Tensor,
        reward_fn: RewardFn | None = None,
        termination_fn: TerminationFn | None = None,
        guide: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Predicted returns of action sequences, averaged over members: (B, S), (B, N, L, A) -> (B, N).

        The reward of each step is ``reward_fn(s, a, s')`` on the predicted states, or the learned reward when
        ``reward_fn`` is None. A rollout ends at the first step that ``termination_fn(s, a, s')`` (or, without
        one, the learned termination head) says terminates: that step's reward counts, none after it; with
        neither, rollouts never end (and the loop skips the bookkeeping).

        Every member rolls out every sequence from ``obs``; the reward is summed inside the loop
        so the rollout is never stored. No host sync: this is the planner's objective. On a CPU the
        B*N rollouts run in chunks of ``worldmodel.cpu.CPU_CHUNK_ROWS``, so each member's activations stay in cache
        (one big batch of 15 envs x 1000 candidates ran at half the speed of chunks of 2000 rows).

        ``guide`` (policy-guided MPC, seed 000 section 5): a policy, imagined states (E, R, S) -> actions (E, R, A);
        each sequence's first action is its own and every later one is the guide's on that member's imagined
        state, so only ``actions[:, :, 0]`` matters.
        """
        assert reward_fn is not None or self.learn_reward, "no reward: pass reward_fn or learn the reward"
        B, N, L, A = actions.shape
        S = obs.shape[-1]
        step_actions = actions.permute(2, 0, 1, 3).reshape(L, B * N, A)  # (L, B*N, A), time-major for the loop
        state = obs[:, None].expand(B, N, S).reshape(1, B * N, S)  # (1, B*N, S), broadcast over members at t=0
        mlp = self.mlp if self.plan_dtype == "float32" else self.mlp.low_precision(torch.bfloat16)
        returns = [
            self._rollout_returns(state[:, rows], step_actions[:, rows], reward_fn, termination_fn, mlp, guide)
            for rows in row_chunks(B * N, obs.device)
        ]  # each (E, rows)
        return torch.cat(returns, dim=1).mean(dim=0).view(B, N)

    def _rollout_returns(
        self,
        state: Tensor,
        step_actions: Tensor,
        reward_fn: RewardFn | None,
        termination_fn: TerminationFn | None,
        mlp,
        guide: Callable[[Tensor], Tensor] | None = None,
    ) -> Tensor:
        """Summed predicted rewards of each member, up to its termination: (1, R, S), (L, R, A) -> (E, R).
        With a ``guide``, the actions after the first are its own on each member's state, (E, R, A)."""
        E, K, S = self.ensemble_size, len(self.model_input_dims), self.obs_size
        L, R, _ = step_actions.shape
        ends = termination_fn is not None or self.learn_termination
        penalty = self.cfg.termination_penalty
        x = state.new_empty(E, R, self.in_size)  # (E, R, in), the model input, rewritten in place each step
        returns = state.new_zeros(E, R)  # (E, R)
        alive = torch.ones(E, R, dtype=torch.bool, device=state.device) if ends else None  # (E, R)
        for t in range(L):
            action = step_actions[t] if guide is None or t == 0 else guide(state)  # (R, A), guided (E, R, A)
            for start, source, length in self._spans:
                x[..., start : start + length].copy_(state[..., source : source + length])
            x[..., K:].copy_(action)
            x.sub_(self.input_norm.mean).div_(self.input_norm.std)
            out = mlp(x)  # (E, R, S [+1] [+1]), normalised, float32; fresh, so its deltas can become the next state
            next_state = out[..., :S].mul_(self.target_norm.std).add_(self.target_norm.mean).add_(state)  # (E, R, S)
            reward = reward_fn(state, action, next_state) if reward_fn is not None else self._learned_reward(out)
            if alive is None:
                returns += reward  # (E, R)
            else:
                done = termination_fn(state, action, next_state) if termination_fn is not None else out[..., -1] > 0
                returns += counted_reward(reward, alive, done, penalty)
                alive &= ~done
            state = next_state
        return returns
