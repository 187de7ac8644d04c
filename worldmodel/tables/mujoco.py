"""Issue 19's table: the state agent on four gymnasium MuJoCo tasks (``configs/state_mujoco.yaml`` with
``env.id=<task>``), AverageReturn at 100k env steps, beside MBBL's PETS-CEM at 200k env steps.

Scales:
  cpu    configs/state_mujoco.yaml as it is (100k env steps within 45 minutes on 2 cores); seeds 0 1 2.
  gpu    the same data with PETS-sized model and planner (GPU below), meant for --device cuda; seeds 0 1 2.
  smoke  configs/state_smoke.yaml (tiny ensemble, 2 iterations, 50-step episodes: a few hundred env steps a
         task) with the task's env.id; seed 0 (tests).
"""

from __future__ import annotations

from worldmodel.tables.types import Column, Figure, Run, Row, Scale, Table

TASKS = ("HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5")
EVAL_AT = 100_000
CONFIG = "configs/state_mujoco.yaml"

MBBL = "MBBL PETS-CEM, 200k"
MBBL_ET = "MBBL PETS-CEM, early termination, 200k"
MBBL_PAPER = (
    "Wang et al. 2019, \"Benchmarking Model-Based Reinforcement Learning\", arXiv 1907.02057, Table 1 "
    "(WilsonWangTHU/mbbl img/mbbl_result_table.jpeg): PETS-CEM after 200k env steps, mean ± std over 4 seeds"
)
ENVS_DIFFER = (
    "MBBL's environments are its own modified versions of gym's, not gymnasium's v5 (e.g. its Hopper, Walker2D "
    "and Ant run whole episodes unless -ET, while v5's end an episode when the body is unhealthy); the "
    "differences are in RESULTS.md"
)
COLUMNS = (
    Column(MBBL, f"{MBBL_PAPER}, environments without early termination; {ENVS_DIFFER}"),
    Column(MBBL_ET, f"{MBBL_PAPER}, the -ET (early termination) environments Hopper-ET, Walker2D-ET, Ant-ET"),
)
PUBLISHED: dict[str, dict[str, Figure]] = {
    "HalfCheetah-v5": {MBBL: (2795.3, 879.9)},
    "Hopper-v5": {MBBL: (1125.0, 679.6), MBBL_ET: (129.3, 36.0)},
    "Walker2d-v5": {MBBL: (260.2, 536.9), MBBL_ET: (-2.5, 6.8)},
    "Ant-v5": {MBBL: (1165.5, 226.9), MBBL_ET: (81.6, 145.8)},
}

# Smoke: state_smoke.yaml (2 envs, 50-step episodes, 2 random episodes, 2 iterations of 2 MPC episodes) with a
# smaller model and planner, no videos: a few hundred env steps a task.
SMOKE = (
    "model.hidden_size=16",
    "train.train_steps=10",
    "planner.candidates=16",
    "planner.elites=4",
    "planner.horizon=3",
    "train.video_every=0",
)
# GPU: the model and planner of PETS (Chua et al. 2018; 5 members, here of 3x200 hidden, CEM 500
# candidates x 5 iterations, horizon 30, 50 elites) and twice the training per iteration, on the same data.
GPU = (
    "model.hidden_size=200",
    "model.num_layers=3",
    "planner.candidates=500",
    "planner.iterations=5",
    "planner.elites=50",
    "planner.horizon=30",
    "train.train_steps=2000",
)
STATE_SMOKE_SCALE = Scale(
    "smoke",
    seeds=(0,),
    config="configs/state_smoke.yaml",
    note="Smoke scale (tests): a few hundred env steps with a tiny model; the values say nothing about the method.",
)
"""The state tables' smoke scale (this one's and the planners table's)."""
SCALES = (
    Scale("cpu", seeds=(0, 1, 2), config=CONFIG),
    Scale("gpu", seeds=(0, 1, 2), config=CONFIG, note="GPU scale: PETS-sized model and planner, run with --device cuda."),
    STATE_SMOKE_SCALE,
)

MUJOCO_TABLE = Table(
    name="mujoco",
    agent="state",
    source=f"{MBBL_PAPER}. {ENVS_DIFFER}",
    scales=SCALES,
    columns=COLUMNS,
    runs=tuple(Run(task, None, (f"env.id={task}",), {"gpu": GPU, "smoke": SMOKE}) for task in TASKS),
    rows=tuple(Row(task, task, f"{task}, 100k env steps", PUBLISHED[task], env_steps=EVAL_AT) for task in TASKS),
)
