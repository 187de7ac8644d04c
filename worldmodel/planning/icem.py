"""iCEM: the improved cross-entropy method of Pinneri et al. 2020, "Sample-efficient Cross-Entropy Method
for Real-time Planning" (arXiv 2008.06389), over batched action sequences.

Shapes: B planning problems, N candidates, J elites, K kept elites, L horizon, A action dim.

What it adds to CEM, per call:
- coloured noise: the Gaussian's samples are correlated along the horizon, power spectrum ~ 1/f^beta
  (``noise_beta``), so sequences vary smoothly instead of jittering step by step;
- a decaying population: iteration i draws n_i = max(N gamma^-i, 2 J) sequences (``population_decay``);
- memory: the best K = int(keep_elites J) elites of an iteration are evaluated again in the next one,
  and (``shift_elites``) the last call's K kept elites, shifted by one step with a fresh last action,
  join the first iteration; the last iteration also evaluates the mean itself;
- the executed plan is the best sequence of the last iteration (as the paper executes), not the mean.
  That iteration holds the best K of the one before and the mean, so with a deterministic objective
  the plan is the best sequence evaluated in the call, or the mean when nothing sampled beat it.

Every shape is fixed by the config and the iteration index (and whether elites are remembered), so a
call can be recorded as one CUDA graph or compiled (``planner.compile``, with ``shift_elites`` off).
"""

from __future__ import annotations

import torch
from torch import Tensor

from worldmodel.planning.base import Objective, Planner, top_elites
from worldmodel.planning.config import PlannerConfig


def colour_filter(horizon: int, beta: float) -> Tensor:
    """The (L, L) matrix C with ``C @ white`` coloured along L: white (..., L, A) of unit-variance Gaussians
    becomes Gaussian noise of unit variance per step whose power spectrum falls as 1/f^beta.

    C applies the filter f^(-beta/2) in the Fourier domain, C x = irfft(f^(-beta/2) rfft(x)) (circular,
    so the noise is stationary along the horizon); the zero frequency takes the lowest one's gain, 1/L,
    as the colorednoise package the paper used does. Built once in float64 on the CPU.
    """
    L = horizon
    freqs = torch.fft.rfftfreq(L, dtype=torch.float64)  # (L//2 + 1,): 0, 1/L, ..., 1/2
    freqs[0] = 1.0 / L
    gain = freqs ** (-beta / 2)  # (L//2 + 1,)
    # Unit variance per step: Var(C x)_t = mean over the full spectrum (both halves) of gain^2.
    full = torch.cat([gain, gain[1 : (L - 1) // 2 + 1].flip(0)])  # (L,)
    gain = gain / full.square().mean().sqrt()
    eye = torch.eye(L, dtype=torch.float64)  # column j: the unit impulse at step j
    return torch.fft.irfft(torch.fft.rfft(eye, dim=0) * gain[:, None], n=L, dim=0)  # (L, L), column j = C e_j


def population(cfg: PlannerConfig, iteration: int) -> int:
    """n_i, the new sequences iteration ``iteration`` draws: max(N gamma^-i, 2 J)."""
    return max(int(cfg.candidates / cfg.population_decay**iteration), 2 * cfg.elites)


def sequences_per_call(cfg: PlannerConfig) -> int:
    """Sequences one call evaluates per env once elites are remembered: the n_i, K kept elites in each
    iteration after the first (and shifted ones in the first with ``shift_elites``) and the mean in the last."""
    kept = int(cfg.keep_elites * cfg.elites)
    shifted = kept if cfg.shift_elites else 0
    return sum(population(cfg, i) for i in range(cfg.iterations)) + shifted + kept * (cfg.iterations - 1) + 1


class ICEMPlanner(Planner):
    """iCEM: maximise ``objective`` over action sequences inside the box [low, high] (see the module doc).

    >>> planner = ICEMPlanner(PlannerConfig(kind="icem"), low=-torch.ones(6), high=torch.ones(6))
    >>> plan = planner.plan(objective, batch_size=num_envs)   # (B, L, A)
    """

    def __init__(
        self,
        cfg: PlannerConfig,
        low: Tensor,
        high: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__(cfg, low, high, generator=generator)
        self.colour = colour_filter(cfg.horizon, cfg.noise_beta).to(low.device, torch.float32)  # (L, L)
        self.kept = int(cfg.keep_elites * cfg.elites)  # K

    def noise(self, batch_size: int, count: int) -> Tensor:
        """(B, count, L, A) unit-variance Gaussians, coloured along L, from the planner's generator."""
        white = torch.randn(
            (batch_size, count, self.cfg.horizon, self.low.shape[0]), device=self.device, generator=self.generator
        )
        return white if self.cfg.noise_beta == 0 else torch.matmul(self.colour, white)  # (L, L) @ (B, n, L, A)

    @torch.no_grad()
    def plan(self, objective: Objective, batch_size: int) -> Tensor:
        """Return the best action sequences of the last iteration (B, L, A); execute ``[:, 0]``."""
        cfg = self.cfg
        B, J, K = batch_size, cfg.elites, self.kept
        half_range = (self.high - self.low) / 2  # (A,)
        mean, _ = self.first_mean(B)  # (B, L, A)
        std = (half_range * cfg.init_std).expand(B, cfg.horizon, half_range.shape[0])  # (B, L, A)
        shifted = self.recall("elites", B) if cfg.shift_elites and K > 0 else None  # (B, K, L, A)
        elites = None

        for iteration in range(cfg.iterations):
            n = population(cfg, iteration)
            extra = K if iteration == 0 and shifted is not None else 0  # their fresh last actions
            samples = mean[:, None] + std[:, None] * self.noise(B, n + extra)
            samples = torch.clamp(samples, self.low, self.high)  # (B, n + extra, L, A)
            parts = [samples[:, :n]]
            if extra:  # the last call's kept elites one step on, ending in a fresh action
                parts.append(torch.cat([shifted[:, :, 1:], samples[:, n:, -1:]], dim=2))  # (B, K, L, A)
            if elites is not None and K > 0:
                parts.append(elites[:, :K])  # the previous iteration's best K, evaluated again
            if iteration == cfg.iterations - 1:
                parts.append(mean[:, None])  # the mean itself competes in the last iteration
            actions = torch.cat(parts, dim=1)  # (B, n + ..., L, A)

            returns = objective(actions)  # (B, n + ...)
            elites, _ = top_elites(actions, returns, J)  # (B, J, L, A), best first
            elite_std, elite_mean = torch.std_mean(elites, dim=1, correction=0)  # (B, L, A) each
            if cfg.alpha == 1.0:
                mean, std = elite_mean, elite_std
            else:
                mean = cfg.alpha * elite_mean + (1 - cfg.alpha) * mean  # (B, L, A)
                std = cfg.alpha * elite_std + (1 - cfg.alpha) * std  # (B, L, A)

        if cfg.shift_elites and K > 0:
            self.remember("elites", elites[:, :K])
        if cfg.warm_start:
            self.remember("mean", mean)
        return elites[:, 0]
