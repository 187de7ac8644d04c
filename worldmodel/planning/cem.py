"""Cross-entropy method (CEM) and random shooting over batched action sequences.

Shapes: B planning problems (one per environment), N candidate sequences, L horizon, A action dim.

The whole loop is torch ops on one device: sampling, the objective (the model's imagined
returns, summed inside the model rollout), top-k and the refit. Nothing calls ``.item()`` or
copies to the host, so on a GPU one ``plan`` call is queued without a single sync.
Random shooting is CEM with one iteration and one elite.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Callable, Literal

import torch
from torch import Tensor

from worldmodel.config import check

Objective = Callable[[Tensor], Tensor]
"""actions (B, N, L, A) -> predicted returns (B, N)."""


@dataclass
class PlannerConfig:
    kind: Literal["rs", "cem"] = "cem"
    """rs: random shooting (best of N uniform sequences); cem: cross-entropy method."""
    horizon: int = 15
    """L, planning horizon in agent steps."""
    candidates: int = 1000
    """N, action sequences evaluated per iteration and per environment."""
    iterations: int = 4
    """M, CEM refits (random shooting always uses 1)."""
    elites: int = 100
    """J, best sequences the Gaussian is refitted to."""
    alpha: float = 1.0
    """Weight of the new elite statistics in the refit: 1 replaces, smaller values smooth."""
    init: Literal["uniform", "gaussian"] = "uniform"
    """First iteration: uniform over the action box (homework) or N(centre, init_std) (PlaNet)."""
    init_std: float = 1.0
    """Std of the first Gaussian, as a fraction of the half-range of the action box."""
    warm_start: bool = False
    """Start from the previous plan shifted by one step instead of from scratch."""
    sample: bool = False
    """Latent rollouts draw z from the prior (PlaNet) instead of following its mean (the pixel agent)."""
    compile: bool = False
    """Each planner call (all CEM iterations) as one CUDA graph on a GPU, torch.compile on a CPU (the pixel
    agent). A compiled call keeps no plan between calls: needs warm_start false."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Precision of the model's matmuls in the planner's rollouts (states and returns stay float32; the state
    ensemble only): bfloat16 is about 2x faster on CPUs with avx512_bf16 and the planner cannot tell (RESULTS.md)."""

    def __post_init__(self) -> None:
        check(self.horizon >= 1, f"planner.horizon must be >= 1, got {self.horizon}")
        check(self.candidates >= 1, f"planner.candidates must be >= 1, got {self.candidates}")
        check(self.iterations >= 1, f"planner.iterations must be >= 1, got {self.iterations}")
        check(
            1 <= self.elites <= self.candidates,
            f"planner.elites must be between 1 and planner.candidates ({self.candidates}), got {self.elites}",
        )
        check(0.0 < self.alpha <= 1.0, f"planner.alpha must be in (0, 1], got {self.alpha}")
        check(self.init_std > 0, f"planner.init_std must be > 0, got {self.init_std}")
        check(
            not (self.compile and self.warm_start),
            "planner.compile needs planner.warm_start=false (a compiled call keeps no plan between steps)",
        )


class CEMPlanner:
    """Maximise ``objective`` over action sequences inside the box [low, high].

    >>> planner = CEMPlanner(PlannerConfig(), low=-torch.ones(6), high=torch.ones(6))
    >>> plan = planner.plan(objective, batch_size=num_envs)   # (B, L, A)
    >>> action = plan[:, 0]
    """

    def __init__(
        self,
        cfg: PlannerConfig,
        low: Tensor,
        high: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        if cfg.kind == "rs":  # a copy: never mutate the caller's config
            cfg = dataclasses.replace(cfg, iterations=1, elites=1, alpha=1.0, init="uniform", warm_start=False)
        self.cfg = cfg
        self.low = low  # (A,)
        self.high = high  # (A,)
        self.generator = generator
        self._previous_mean: Tensor | None = None  # (B, L, A), for warm starts

    @property
    def device(self) -> torch.device:
        return self.low.device

    def reset(self) -> None:
        """Forget the previous plan (call at episode boundaries)."""
        self._previous_mean = None

    def keep_rows(self, index: Tensor) -> None:
        """Keep only the rows ``index`` (B',) of the warm start, in that order (some envs' episodes ended)."""
        if self._previous_mean is not None:
            self._previous_mean = self._previous_mean[index]

    @torch.no_grad()
    def plan(self, objective: Objective, batch_size: int) -> Tensor:
        """Return the optimised action sequences (B, L, A); execute ``[:, 0]``."""
        cfg = self.cfg
        B, N, L, J = batch_size, cfg.candidates, cfg.horizon, cfg.elites
        centre = (self.high + self.low) / 2  # (A,)
        half_range = (self.high - self.low) / 2  # (A,)
        A = centre.shape[0]

        mean = centre.expand(B, L, A).clone()
        warm = cfg.warm_start and self._previous_mean is not None and self._previous_mean.shape[0] == B
        if warm:
            mean[:, :-1] = self._previous_mean[:, 1:]  # shift by one step, repeat the centre at the end
        std = (half_range * cfg.init_std).expand(B, L, A).clone()

        for iteration in range(cfg.iterations):
            if iteration == 0 and cfg.init == "uniform" and not warm:
                noise = torch.rand((B, N, L, A), device=self.device, generator=self.generator)
                actions = self.low + (self.high - self.low) * noise  # (B, N, L, A)
            else:
                noise = torch.randn((B, N, L, A), device=self.device, generator=self.generator)
                actions = mean[:, None] + std[:, None] * noise
                actions = torch.clamp(actions, self.low, self.high)  # (B, N, L, A)

            returns = objective(actions)  # (B, N)
            # A diverged rollout must never become an elite, whatever the sign of the returns.
            returns = returns.nan_to_num(nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)  # one kernel
            elite_idx = returns.topk(J, dim=1).indices  # (B, J)
            elites = actions.gather(1, elite_idx[:, :, None, None].expand(B, J, L, A))  # (B, J, L, A)

            elite_std, elite_mean = torch.std_mean(elites, dim=1, correction=0)  # (B, L, A) each
            if cfg.alpha == 1.0:  # replace: no smoothing kernels (each one counts in a GPU's kernel chain)
                mean, std = elite_mean, elite_std
            else:
                mean = cfg.alpha * elite_mean + (1 - cfg.alpha) * mean  # (B, L, A)
                std = cfg.alpha * elite_std + (1 - cfg.alpha) * std  # (B, L, A)

        if cfg.warm_start:
            self._previous_mean = mean
        return mean
