"""The seeds' tables, on the homework cheetah (``cheetah-cs285``) with the state agent:

  seed001  CS285 hw4 on its cheetah (1000-step episodes): random shooting, CEM, CEM with horizon 1,
           CEM with 50 candidates; final AverageReturn (mean of 10 evaluation episodes) per run.
  seed000  the 2017 homework's iteration 0: the random-shooting controller's return after training on
           10 random episodes, and DynamicsMSE, with and without delta normalisation.

Scales: ``full`` uses the seed's settings exactly (configs/state_halfcheetah_{rs,cem}.yaml; seeds 0 1 2), meant
for a GPU; ``lite`` shrinks them (LITE_COMMON, SEED000_LITE) and runs seed 0.
"""

from __future__ import annotations

from worldmodel.tables.types import Column, Run, Row, Scale, Table

SEED_COLUMN = "seed's figure"
RS_CONFIG = "configs/state_halfcheetah_rs.yaml"
CEM_CONFIG = "configs/state_halfcheetah_cem.yaml"
LITE_NOTE = "Lite scale: smaller settings than the seed's, so compare the ordering, not the values."
SCALES = (Scale("full", seeds=(0, 1, 2)), Scale("lite", seeds=(0,), note=LITE_NOTE))

# Lite: the same env and algorithm with 500-step episodes, 3 iterations of 2 collected and 3 evaluation
# episodes, 500 training steps, and fewer candidates for random shooting (500) and CEM (100): about
# 1/20 of the full table's compute, so it fits 20 minutes on 2 CPU cores (RESULTS.md has the measured time).
LITE_COMMON = (
    "env.episode_length=500",
    "env.num_envs=5",
    "train.train_steps=500",
    "train.iterations=3",
    "train.random_episodes=10",
    "train.mpc_episodes=2",
    "train.eval_episodes=3",
)
SEED001_SOURCE = (
    "seed 001 (CS285 hw4 via CAS4160 HW6), Tables 1 and 2: mean and std over its 10 evaluation episodes, one run"
)


def seed001_row(name: str, label: str, mean: float, std: float) -> Row:
    return Row(name, name, label, {SEED_COLUMN: (mean, std)})


SEED001 = Table(
    name="seed001",
    agent="state",
    source=SEED001_SOURCE,
    scales=SCALES,
    columns=(Column(SEED_COLUMN, SEED001_SOURCE),),
    runs=(
        Run("rs", RS_CONFIG, scales={"lite": LITE_COMMON + ("planner.candidates=500",)}),
        Run("cem", CEM_CONFIG, scales={"lite": LITE_COMMON + ("planner.candidates=100",)}),
        Run("cem_h1", CEM_CONFIG, ("planner.horizon=1",), scales={"lite": LITE_COMMON}),
        Run("cem_k50", CEM_CONFIG, ("planner.candidates=50",), scales={"lite": LITE_COMMON}),
    ),
    rows=(
        seed001_row("rs", "random shooting", 873.31, 49.89),
        seed001_row("cem", "CEM", 2302.62, 42.94),
        seed001_row("cem_h1", "CEM, horizon 1", -22422.16, 10189.61),
        seed001_row("cem_k50", "CEM, 50 candidates", 1282.38, 59.10),
    ),
    findings=(
        ("cem > rs > random policy", lambda m, random: m["cem"] > m["rs"] > random),
        ("cem_h1 far below rs and cem (below the random policy)", lambda m, random: m["cem_h1"] < random),
        ("cem_k50 between rs and cem", lambda m, random: m["rs"] < m["cem_k50"] < m["cem"]),
    ),
)

# Seed 000 (2017): 10 random paths of 1000 steps, one network 2x500, 60 epochs of batch 512 over the
# 10,000 transitions (~1172 steps), 1000 random-shooting paths of horizon 15, 10 on-policy paths.
SEED000_MODEL = (
    "model.ensemble_size=1",
    "model.hidden_size=500",
    "train.train_steps=1172",
    "train.iterations=1",
    "train.random_episodes=10",
    "train.mpc_episodes=10",
    "train.eval_episodes=0",
    "train.collect_after_last=true",
    "env.num_envs=10",
)
SEED000_LITE = ("env.episode_length=500", "model.hidden_size=250", "train.train_steps=600", "planner.candidates=250")
SEED000_SOURCE = "seed 000 (CS294-112 hw4, 2017), Fig. 1: iteration 0 of the random-shooting MPC controller (5 seeds)"
SEED000 = Table(
    name="seed000",
    agent="state",
    source=SEED000_SOURCE,
    scales=SCALES,
    columns=(Column(SEED_COLUMN, SEED000_SOURCE),),
    runs=(
        Run("rs", RS_CONFIG, SEED000_MODEL, scales={"lite": SEED000_LITE}),
        Run("rs_nodelta", RS_CONFIG, SEED000_MODEL + ("model.delta_norm=false",), scales={"lite": SEED000_LITE}),
    ),
    rows=(
        Row("rs_itr0", "rs", "RS iteration-0 AverageReturn", {SEED_COLUMN: (317.0, 16.3)}, iteration=0),
        Row(
            "rs_itr0_mse", "rs", "RS iteration-0 DynamicsMSE", {SEED_COLUMN: (0.291, None)}, "DynamicsMSE", iteration=0
        ),
        Row("rs_nodelta_itr0", "rs_nodelta", "no delta normalisation: AverageReturn", iteration=0),
        Row(
            "rs_nodelta_itr0_mse",
            "rs_nodelta",
            "no delta normalisation: DynamicsMSE",
            metric="DynamicsMSE",
            iteration=0,
        ),
    ),
    findings=(("rs_itr0 > random policy", lambda m, random: m["rs_itr0"] > random),),
)
