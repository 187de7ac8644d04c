"""Issue 20's table on pixels: return per planning budget for the pixel agent on the CPU cartpole config
(``configs/pixels_cartpole_100k_cpu.yaml``: dmc:cartpole-swingup at action repeat 8 to 100k env steps, CEM 100
candidates x 4 iterations = 400 action sequences a planner call). Each planner (CEM, iCEM, MPPI) is given a
quarter, half or all of those 400 sequences; the row is the evaluation return at 100k env steps, mean ± std
over seeds. One sequence is one latent rollout of the horizon, so the sequences per call are the planner's
model evaluations per action up to the same factor for every row.

The question it answers: does a planner reach CEM 100 x 4's return (the row ``cem_100``, the config as it is)
with at most 25% of its model evaluations? ``budgets.png`` draws each planner's return against its budget.

Run names are ``<planner>_<percent of 400>`` as in the state table (``worldmodel/tables/planners.py``).

Scales:
  cpu    configs/pixels_cartpole_100k_cpu.yaml as it is; seeds 0 1 2.
  smoke  configs/pixels_smoke.yaml with the planet table's smoke overrides (tests); seed 0.
"""

from __future__ import annotations

from worldmodel.tables.planet import PIXEL_SMOKE_SCALE, SMOKE
from worldmodel.tables.planners import NAMES, reaches_cem_with_a_quarter, run_name
from worldmodel.tables.types import Budgets, Row, Run, Scale, Table

CONFIG = "configs/pixels_cartpole_100k_cpu.yaml"
FULL = 400  # CEM 100 candidates x 4 iterations: the config's sequences per call
EVAL_AT = 100_000
# Overrides per (planner, percent of FULL). The elites keep the config's 10% of the candidates (at least 3;
# iCEM at least 4, so that its 30% kept elites are at least one sequence); iCEM's counted population as in the
# state table (worldmodel.planning.icem.sequences_per_call), with its default noise beta 2.
SETTINGS: dict[tuple[str, int], tuple[str, ...]] = {
    ("cem", 25): ("planner.candidates=25", "planner.elites=3"),
    ("cem", 50): ("planner.candidates=50", "planner.elites=5"),
    ("cem", 100): (),
    ("icem", 25): ("planner.kind=icem", "planner.candidates=33", "planner.elites=4"),
    ("icem", 50): ("planner.kind=icem", "planner.candidates=67", "planner.elites=6"),
    ("icem", 100): ("planner.kind=icem", "planner.candidates=132", "planner.elites=10"),
    ("mppi", 25): ("planner.kind=mppi", "planner.candidates=25", "planner.elites=3"),
    ("mppi", 50): ("planner.kind=mppi", "planner.candidates=50", "planner.elites=5"),
    ("mppi", 100): ("planner.kind=mppi",),
}
# Sequences per call of each setting (tests check them against the resolved configs).
SEQUENCES: dict[tuple[str, int], int] = {
    ("cem", 25): 100, ("cem", 50): 200, ("cem", 100): 400,
    ("icem", 25): 101, ("icem", 50): 201, ("icem", 100): 401,
    ("mppi", 25): 100, ("mppi", 50): 200, ("mppi", 100): 400,
}


def label(planner: str, percent: int) -> str:
    sequences = SEQUENCES[planner, percent]
    return f"{NAMES[planner]}, {sequences} sequences a call ({100 * sequences / FULL:.0f}% of CEM 100 x 4)"


PLANNERS_PIXELS_TABLE = Table(
    name="planners_pixels",
    agent="pixels",
    source=(
        "ours against ours: each planner's evaluation return at 100k env steps beside CEM 100 x 4's (`cem_100`, "
        "the CPU cartpole config's planner)"
    ),
    scales=(
        Scale("cpu", seeds=(0, 1, 2), config=CONFIG),
        PIXEL_SMOKE_SCALE,
    ),
    columns=(),
    runs=tuple(Run(run_name(p, pct), None, SETTINGS[p, pct], {"smoke": SMOKE}) for (p, pct) in SETTINGS),
    rows=tuple(Row(run_name(p, pct), run_name(p, pct), label(p, pct), env_steps=EVAL_AT) for (p, pct) in SETTINGS),
    findings=(
        ("a planner reaches CEM 100 x 4's return with at most 25% of its evaluations", reaches_cem_with_a_quarter),
    ),
    budgets=(
        Budgets(
            "budgets",
            "evaluation return at 100k env steps against planning budget (pixel cartpole-swingup)",
            tuple((NAMES[p], run_name(p, pct), SEQUENCES[p, pct]) for (p, pct) in SETTINGS),
        ),
    ),
)
