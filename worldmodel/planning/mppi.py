"""MPPI over batched action sequences, as TD-MPC2 plans (Hansen et al. 2024, nicklashansen/tdmpc2
``TDMPC2.plan``), without its policy samples and value bootstrap (the objective is the whole return).

Shapes: B planning problems, N candidates, J elites, L horizon, A action dim.

Each iteration draws N Gaussian sequences around the mean (clipped to the box), takes the J best and
refits the Gaussian to them weighted by w_j = exp(temperature (R_j - max R)) / sum: the weighted mean
and the weighted std, clamped to [min_std, max_std] x the half-range of the box.

The plan returned (and executed) is the last weighted mean. TD-MPC2 instead executes one elite drawn
by its weight (plus std noise while training); the mean is deterministic given the samples, and
exploration is the agent's (the pixel agent's ``train.exploration_noise``).
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldmodel.planning.base import Objective, Planner, top_elites


def elite_weights(returns: Tensor, temperature: float) -> Tensor:
    """Elite returns (B, J), best first -> MPPI weights (B, J) summing to 1: exp(temperature (R_j - R_0)).

    A diverged rollout (return -inf) weighs 0 whatever the temperature; a row whose every return is
    -inf weighs its elites equally."""
    best = returns[:, :1]  # (B, 1)
    gap = torch.where(returns == best, 0.0, returns - best)  # (B, J) <= 0; -inf for a diverged rollout
    logits = (temperature * gap).nan_to_num(nan=-torch.inf)  # temperature 0 x -inf: still weight 0
    return torch.softmax(logits, dim=1)


class MPPIPlanner(Planner):
    """MPPI: maximise ``objective`` over action sequences inside the box [low, high] (see the module doc).

    >>> planner = MPPIPlanner(PlannerConfig(kind="mppi"), low=-torch.ones(6), high=torch.ones(6))
    >>> plan = planner.plan(objective, batch_size=num_envs)   # (B, L, A)
    """

    @torch.no_grad()
    def plan(self, objective: Objective, batch_size: int) -> Tensor:
        """Return the last weighted mean (B, L, A); execute ``[:, 0]``."""
        cfg = self.cfg
        B, N, L, J = batch_size, cfg.candidates, cfg.horizon, cfg.elites
        half_range = (self.high - self.low) / 2  # (A,)
        A = half_range.shape[0]
        min_std, max_std = half_range * cfg.min_std, half_range * cfg.max_std  # (A,) each

        mean, _ = self.first_mean(B)  # (B, L, A)
        std = (half_range * cfg.init_std).expand(B, L, A)  # (B, L, A)
        for _ in range(cfg.iterations):
            noise = torch.randn((B, N, L, A), device=self.device, generator=self.generator)
            actions = torch.clamp(mean[:, None] + std[:, None] * noise, self.low, self.high)  # (B, N, L, A)
            returns = objective(actions)  # (B, N)
            elites, elite_returns = top_elites(actions, returns, J)  # (B, J, L, A), (B, J)
            weights = elite_weights(elite_returns, cfg.temperature)[:, :, None, None]  # (B, J, 1, 1)
            mean = (weights * elites).sum(dim=1)  # (B, L, A)
            variance = (weights * (elites - mean[:, None]).square()).sum(dim=1)  # (B, L, A)
            std = torch.clamp(variance.sqrt(), min_std, max_std)

        if cfg.warm_start:
            self.remember("mean", mean)
        return mean
