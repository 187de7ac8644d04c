"""Issue 20's table: return per planning budget. The state agent at ``make run``'s setting (HalfCheetah-v5,
``configs/state_default.yaml``) with each planner (random shooting, CEM, iCEM, MPPI) given a quarter, half
or all of CEM 250 x 3's 750 action sequences a planner call, final AverageReturn (the last on-policy
iteration's four episodes), mean ± std over seeds. One sequence is one model rollout of the horizon, so the
sequences per call are the planner's model evaluations per action up to the same factor for every row.

The questions it answers: does a planner reach CEM 250 x 3's return (the row ``cem_100``) with at most 25%
of its model evaluations? And the issue's own: does one reach CEM 1000 x 4's (``cem_1000x4``: seed 001's
candidates and iterations, 4000 sequences a call, on the same setting) with at most 25% of its evaluations
(1000 sequences a call)? ``budgets.png`` draws each planner's final return against its sequences per call.

Run names are ``<planner>_<percent of 750>``: ``rs_25`` ... ``mppi_100``, and the reference ``cem_1000x4``;
--tasks picks some of them.

Scales:
  cpu    configs/state_default.yaml as ``make run`` trains it (videos off); seeds 0 1 2.
  smoke  configs/state_smoke.yaml with a tiny model and horizon (tests); seed 0.
"""

from __future__ import annotations

from worldmodel.tables.mujoco import STATE_SMOKE_SCALE
from worldmodel.tables.types import Budgets, Row, Run, Scale, Table

FULL = 750  # CEM 250 candidates x 3 iterations: make run's sequences per call
# Overrides per (planner, percent of FULL). The elites keep CEM's 10% of the candidates (at least 8, MPPI's
# 10 as the earlier single runs had); iCEM's decaying population, kept and shifted elites and final mean
# are counted (worldmodel.planning.icem.sequences_per_call), with the paper's HalfCheetah noise beta 0.25.
SETTINGS: dict[tuple[str, int], tuple[str, ...]] = {
    ("rs", 25): ("planner.kind=rs", "planner.candidates=187"),
    ("rs", 50): ("planner.kind=rs", "planner.candidates=375"),
    ("rs", 100): ("planner.kind=rs", "planner.candidates=750"),
    ("cem", 25): ("planner.candidates=62", "planner.elites=8"),
    ("cem", 50): ("planner.candidates=125", "planner.elites=12"),
    ("cem", 100): (),
    ("icem", 25): ("planner.kind=icem", "planner.candidates=72", "planner.elites=10", "planner.noise_beta=0.25"),
    ("icem", 50): ("planner.kind=icem", "planner.candidates=145", "planner.elites=20", "planner.noise_beta=0.25"),
    ("icem", 100): ("planner.kind=icem", "planner.candidates=298", "planner.elites=25", "planner.noise_beta=0.25"),
    ("mppi", 25): ("planner.kind=mppi", "planner.candidates=62", "planner.elites=10"),
    ("mppi", 50): ("planner.kind=mppi", "planner.candidates=125", "planner.elites=12"),
    ("mppi", 100): ("planner.kind=mppi",),
}
REFERENCE = "cem_1000x4"
# Seed 001's CEM candidates and iterations on make run's setting; the elites keep make run's 10%.
REFERENCE_SETTING = ("planner.candidates=1000", "planner.iterations=4", "planner.elites=100")
REFERENCE_SEQUENCES = 4000
# Sequences per call of each setting (tests check them against the resolved configs).
SEQUENCES: dict[tuple[str, int], int] = {
    ("rs", 25): 187, ("rs", 50): 375, ("rs", 100): 750,
    ("cem", 25): 186, ("cem", 50): 375, ("cem", 100): 750,
    ("icem", 25): 185, ("icem", 50): 372, ("icem", 100): 748,
    ("mppi", 25): 186, ("mppi", 50): 375, ("mppi", 100): 750,
}
NAMES = {"rs": "random shooting", "cem": "CEM", "icem": "iCEM", "mppi": "MPPI"}

SMOKE = ("model.hidden_size=16", "train.train_steps=10", "planner.horizon=3", "train.video_every=0")


def run_name(planner: str, percent: int) -> str:
    return f"{planner}_{percent}"


def label(planner: str, percent: int) -> str:
    sequences = SEQUENCES[planner, percent]
    return f"{NAMES[planner]}, {sequences} sequences a call ({100 * sequences / FULL:.0f}% of CEM 250 x 3)"


def reaches_cem_with_a_quarter(means: dict[str, float], random: float | None) -> bool:
    """Some planner at a quarter of the budget returns at least what the table's full-budget CEM (``cem_100``)
    does (KeyError: a row it needs was not run). Serves the state and the pixel tables."""
    quarter = [means[name] for name in (run_name(p, 25) for p in NAMES) if name in means]
    if not quarter:
        raise KeyError("no run at a quarter of the budget")
    return max(quarter) >= means["cem_100"]


def reaches_reference_with_a_quarter(means: dict[str, float], random: float | None) -> bool:
    """Some run with at most a quarter of CEM 1000 x 4's sequences a call returns at least what it does
    (KeyError: the reference was not run)."""
    reference = means[REFERENCE]
    quarter = [run_name(*key) for key, n in SEQUENCES.items() if 4 * n <= REFERENCE_SEQUENCES]
    cheap = [means[name] for name in quarter if name in means]
    return bool(cheap) and max(cheap) >= reference


SCALES = (Scale("cpu", seeds=(0, 1, 2), config="configs/state_default.yaml"), STATE_SMOKE_SCALE)

PLANNERS_TABLE = Table(
    name="planners",
    agent="state",
    source=(
        "ours against ours: each planner's final return beside CEM 250 x 3's (`cem_100`, make run's planner); "
        "iCEM's paper (Pinneri et al. 2020, arXiv 2008.06389) reports 2.7-22x fewer samples than CEM for the "
        "same performance"
    ),
    scales=SCALES,
    columns=(),
    runs=(
        *(
            Run(run_name(p, pct), None, (*SETTINGS[p, pct], "train.video_every=0"), {"smoke": SMOKE})
            for (p, pct) in SETTINGS
        ),
        Run(REFERENCE, None, (*REFERENCE_SETTING, "train.video_every=0"), {"smoke": SMOKE}),
    ),
    rows=(
        *(Row(run_name(p, pct), run_name(p, pct), label(p, pct)) for (p, pct) in SETTINGS),
        Row(REFERENCE, REFERENCE, f"CEM 1000 x 4 (seed 001's), {REFERENCE_SEQUENCES} sequences a call"),
    ),
    findings=(
        ("a planner reaches CEM 250 x 3's return with at most 25% of its evaluations", reaches_cem_with_a_quarter),
        (
            "a planner reaches CEM 1000 x 4's return with at most 25% of its evaluations (1000 sequences a call)",
            reaches_reference_with_a_quarter,
        ),
    ),
    budgets=(
        Budgets(
            "budgets",
            "final AverageReturn against planning budget (HalfCheetah-v5)",
            (
                *((NAMES[p], run_name(p, pct), SEQUENCES[p, pct]) for (p, pct) in SETTINGS),
                (NAMES["cem"], REFERENCE, REFERENCE_SEQUENCES),
            ),
        ),
    ),
)
