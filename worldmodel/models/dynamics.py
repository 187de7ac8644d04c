"""The state dynamics model: an ensemble of MLPs predicting normalised state deltas.

Shapes: E ensemble members, B batch, N candidates, L horizon, S observation size, A action size.

The model sees the observation dims ``model_input_dims`` (absolute positions hidden) and the
action, normalised; it predicts, for all S dims, the normalised delta (seed 001 eq. 4)

    target = (s' - s - mean_delta) / std_delta,        s' = s + target * std_delta + mean_delta

or, with ``delta_norm=False`` (seed 000's ablation), the difference of normalised states
``(s' - mean_s) / std_s - (s - mean_s) / std_s = (s' - s) / std_s``. Both are "a scale and a
shift on the delta", so one ``target_norm`` serves them.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from worldmodel.config import check
from worldmodel.cpu import row_chunks
from worldmodel.envs.rewards import RewardFn
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

    def __post_init__(self) -> None:
        for name in ("ensemble_size", "hidden_size", "num_layers"):
            value = getattr(self, name)
            check(value >= 1, f"model.{name} must be >= 1, got {value}")
        check(self.learning_rate > 0, f"model.learning_rate must be > 0, got {self.learning_rate}")


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
        self.mlp = EnsembleMLP(
            self.in_size,
            obs_size,
            ensemble_size=cfg.ensemble_size,
            hidden_size=cfg.hidden_size,
            num_layers=cfg.num_layers,
        )
        self.input_norm = Normalizer(self.in_size)
        self.target_norm = Normalizer(obs_size)

    # ---- normalisation ----------------------------------------------------------------------

    def model_input(self, obs: Tensor, actions: Tensor) -> Tensor:
        """(..., S), (..., A) -> the unnormalised model input (..., in)."""
        return torch.cat([obs.index_select(-1, self.input_index), actions], dim=-1)

    @torch.no_grad()
    def fit_normalizers(self, obs: Tensor, actions: Tensor, next_obs: Tensor) -> None:
        """Fit input and target statistics to all the data (n, S), (n, A), (n, S)."""
        self.input_norm.fit(self.model_input(obs, actions))
        if self.cfg.delta_norm:
            self.target_norm.fit(next_obs - obs)
        else:
            # (s' - s) / std_s: the state's scale, and no shift (the means cancel).
            self.target_norm.fit(obs)
            self.target_norm.mean.zero_()

    # ---- training ---------------------------------------------------------------------------

    def member_losses(self, obs: Tensor, actions: Tensor, next_obs: Tensor) -> Tensor:
        """Normalised-delta MSE of each member on its own batch: (E, B, S), (E, B, A), (E, B, S) -> (E,)."""
        E = self.ensemble_size
        assert obs.dim() == 3 and obs.shape[0] == E and actions.shape[:2] == obs.shape[:2], (E, obs.shape, actions.shape)
        x = self.input_norm.normalize(self.model_input(obs, actions))  # (E, B, in)
        target = self.target_norm.normalize(next_obs - obs)  # (E, B, S)
        return (self.mlp(x) - target).square().mean(dim=(1, 2))  # (E,)

    def loss(self, obs: Tensor, actions: Tensor, next_obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum of the members' losses, so each member's gradient is that of its own mean loss."""
        losses = self.member_losses(obs, actions, next_obs)  # (E,)
        metrics = {"model/loss": losses.detach().mean(), "model/loss_max_member": losses.detach().max()}
        return losses.sum(), metrics

    # ---- prediction -------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, obs: Tensor, actions: Tensor) -> Tensor:
        """Next observations, unnormalised: (E, B, S), (E, B, A) -> (E, B, S)."""
        x = self.input_norm.normalize(self.model_input(obs, actions))  # (E, B, in)
        return obs + self.target_norm.denormalize(self.mlp(x))

    @torch.no_grad()
    def imagine_returns(self, obs: Tensor, actions: Tensor, reward_fn: RewardFn) -> Tensor:
        """Predicted returns of action sequences, averaged over members: (B, S), (B, N, L, A) -> (B, N).

        Every member rolls out every sequence from ``obs``; the reward is summed inside the loop
        so the rollout is never stored. No host sync: this is the planner's objective. On a CPU the
        B*N rollouts run in chunks of ``worldmodel.cpu.CPU_CHUNK_ROWS``, so each member's activations stay in cache
        (one big batch of 15 envs x 1000 candidates ran at half the speed of chunks of 2000 rows).
        """
        B, N, L, A = actions.shape
        S = obs.shape[-1]
        step_actions = actions.permute(2, 0, 1, 3).reshape(L, B * N, A)  # (L, B*N, A), time-major for the loop
        state = obs[:, None].expand(B, N, S).reshape(1, B * N, S)  # (1, B*N, S), broadcast over members at t=0
        mlp = self.mlp if self.plan_dtype == "float32" else self.mlp.low_precision(torch.bfloat16)
        returns = [
            self._rollout_returns(state[:, rows], step_actions[:, rows], reward_fn, mlp)
            for rows in row_chunks(B * N, obs.device)
        ]  # each (E, rows)
        return torch.cat(returns, dim=1).mean(dim=0).view(B, N)

    def _rollout_returns(self, state: Tensor, step_actions: Tensor, reward_fn: RewardFn, mlp) -> Tensor:
        """Summed predicted rewards of each member: (1, R, S), (L, R, A) -> (E, R)."""
        E, K = self.ensemble_size, len(self.model_input_dims)
        L, R, _ = step_actions.shape
        x = state.new_empty(E, R, self.in_size)  # (E, R, in), the model input, rewritten in place each step
        returns = state.new_zeros(E, R)  # (E, R)
        for t in range(L):
            action = step_actions[t]  # (R, A)
            for start, source, length in self._spans:
                x[..., start : start + length].copy_(state[..., source : source + length])
            x[..., K:].copy_(action)
            x.sub_(self.input_norm.mean).div_(self.input_norm.std)
            delta = mlp(x)  # (E, R, S), normalised, float32; a fresh tensor, so it can become the next state
            next_state = delta.mul_(self.target_norm.std).add_(self.target_norm.mean).add_(state)  # (E, R, S)
            returns += reward_fn(state, action, next_state)  # (E, R)
            state = next_state
        return returns
