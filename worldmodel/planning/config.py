"""The planner's config: which trajectory optimiser (``kind``) and its settings, for both agents.

Fields shared by every kind come first; then the ones only iCEM or only MPPI reads. Defaults of the
new planners are the papers' own: iCEM (Pinneri et al. 2020, arXiv 2008.06389, and the authors' code
martius-lab/iCEM) and MPPI as TD-MPC2 plans (Hansen et al. 2024, nicklashansen/tdmpc2 ``TDMPC2.plan``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from worldmodel.config import check


@dataclass
class PlannerConfig:
    kind: Literal["rs", "cem", "icem", "mppi"] = "cem"
    """rs: random shooting (best of N uniform sequences); cem: cross-entropy method; icem: improved CEM
    (coloured noise, decaying population, elites kept between iterations and steps; Pinneri et al. 2020);
    mppi: elites weighted by exp(temperature x return), as TD-MPC2 plans."""
    horizon: int = 15
    """L, planning horizon in agent steps."""
    candidates: int = 1000
    """N, action sequences evaluated per iteration and per environment (iCEM: in its first iteration)."""
    iterations: int = 4
    """M, refits of the sampling distribution (random shooting always uses 1)."""
    elites: int = 100
    """J, best sequences the distribution is refitted to (MPPI: the ones it weighs)."""
    alpha: float = 1.0
    """CEM and iCEM: weight of the new elite statistics in the refit: 1 replaces, smaller values smooth
    (iCEM's paper keeps 0.1 of the old ones: alpha=0.9). MPPI replaces, as TD-MPC2."""
    init: Literal["uniform", "gaussian"] = "uniform"
    """CEM: first iteration uniform over the action box (homework) or N(centre, init_std) (PlaNet). iCEM
    and MPPI always start from a Gaussian of std init_std."""
    init_std: float = 1.0
    """Std of the first Gaussian, as a fraction of the half-range of the action box (iCEM's paper: 0.5;
    TD-MPC2 starts MPPI at its max_std, 2)."""
    warm_start: bool = False
    """Start from the previous plan's mean shifted by one step instead of from the box centre (iCEM's paper
    and TD-MPC2 always do)."""
    sample: bool = False
    """Latent rollouts draw z from the prior (PlaNet) instead of following its mean (the pixel agent)."""
    compile: bool = False
    """Each planner call (all iterations) as one CUDA graph on a GPU, torch.compile on a CPU (the pixel
    agent). A compiled call keeps nothing between calls: needs warm_start false (and iCEM shift_elites false)."""
    dtype: Literal["float32", "bfloat16"] = "float32"
    """Precision of the model's matmuls in the planner's rollouts (states and returns stay float32; the state
    ensemble only): bfloat16 is about 2x faster on CPUs with avx512_bf16 and the planner cannot tell (RESULTS.md)."""

    # ---- iCEM (kind: icem) ----
    noise_beta: float = 2.0
    """iCEM: colour of the sampling noise along the horizon, power spectrum ~ 1/f^beta: 0 white (CEM's),
    2 brown (smooth, low-frequency sequences). The paper tunes it per task: 0.25 HalfCheetah running, 2.0
    humanoid standup, 2.5 to 3.5 manipulation (its code's default 3.0)."""
    population_decay: float = 1.25
    """iCEM: gamma, iteration i samples max(N gamma^-i, 2 J) new sequences (needs candidates >= 2 elites)."""
    keep_elites: float = 0.3
    """iCEM: fraction of the elites kept, the best int(keep_elites x J): into each next iteration, and (with
    shift_elites) shifted by one step into the next call's first iteration."""
    shift_elites: bool = True
    """iCEM: the previous call's kept elites, shifted by one step (a fresh last action), join the first
    iteration: iCEM's memory between steps, forgotten on reset()."""

    # ---- MPPI (kind: mppi) ----
    temperature: float = 0.5
    """MPPI: elite j weighs exp(temperature x (return_j - best return)), normalised: 0 is the plain mean of
    the elites, a large value the best elite alone. TD-MPC2: 0.5 (on its value scale)."""
    min_std: float = 0.05
    """MPPI: floor of each refitted std, a fraction of the half-range of the action box (TD-MPC2: 0.05)."""
    max_std: float = 2.0
    """MPPI: ceiling of each refitted std, a fraction of the half-range of the action box (TD-MPC2: 2)."""

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
        check(self.noise_beta >= 0, f"planner.noise_beta must be >= 0, got {self.noise_beta}")
        check(self.population_decay >= 1, f"planner.population_decay must be >= 1, got {self.population_decay}")
        check(0.0 <= self.keep_elites <= 1.0, f"planner.keep_elites must be in [0, 1], got {self.keep_elites}")
        check(self.temperature >= 0, f"planner.temperature must be >= 0, got {self.temperature}")
        check(
            0 < self.min_std <= self.max_std,
            f"planner.min_std and planner.max_std must satisfy 0 < min_std <= max_std, "
            f"got {self.min_std} and {self.max_std}",
        )
        if self.kind == "icem":
            check(
                self.candidates >= 2 * self.elites,
                f"planner.kind=icem needs planner.candidates >= 2 x planner.elites (its population decays to "
                f"2 x elites), got {self.candidates} and {self.elites}",
            )
            check(
                not (self.compile and self.shift_elites),
                "planner.compile with planner.kind=icem needs planner.shift_elites=false "
                "(a compiled call keeps no elites between steps)",
            )
