"""Cross-entropy method (CEM) and random shooting over batched action sequences.

Shapes: B planning problems (one per environment), N candidate sequences, L horizon, A action dim.

The whole loop is torch ops on one device: sampling, the objective (the model's imagined
returns, summed inside the model rollout), top-k and the refit. Nothing calls ``.item()`` or
copies to the host, so on a GPU one ``plan`` call is queued without a single sync.
Random shooting is CEM with one iteration and one elite.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import Tensor

from worldmodel.planning.base import Objective, Planner, top_elites
from worldmodel.planning.config import PlannerConfig

__all__ = ["CEMPlanner", "Objective", "PlannerConfig"]


class CEMPlanner(Planner):
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
        super().__init__(cfg, low, high, generator=generator)

    @torch.no_grad()
    def plan(self, objective: Objective, batch_size: int) -> Tensor:
        """Return the optimised action sequences (B, L, A); execute ``[:, 0]``."""
        cfg = self.cfg
        B, N, L, J = batch_size, cfg.candidates, cfg.horizon, cfg.elites
        half_range = (self.high - self.low) / 2  # (A,)
        A = half_range.shape[0]

        mean, warm = self.first_mean(B)  # (B, L, A)
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
            elites, _ = top_elites(actions, returns, J)  # (B, J, L, A)

            elite_std, elite_mean = torch.std_mean(elites, dim=1, correction=0)  # (B, L, A) each
            if cfg.alpha == 1.0:  # replace: no smoothing kernels (each one counts in a GPU's kernel chain)
                mean, std = elite_mean, elite_std
            else:
                mean = cfg.alpha * elite_mean + (1 - cfg.alpha) * mean  # (B, L, A)
                std = cfg.alpha * elite_std + (1 - cfg.alpha) * std  # (B, L, A)

        if cfg.warm_start:
            self.remember("mean", mean)
        return mean
