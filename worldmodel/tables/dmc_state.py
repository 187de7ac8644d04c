"""Issue 19's dm_control table: the state agent on DeepMind Control tasks from their states, the reward learned
by the ensemble (``configs/state_dmc.yaml`` with ``env.id=dmc:<task>``), AverageReturn at 100k env steps
beside TD-MPC2's state-based figure at 100k and the random policy's return (each run's first random episodes,
table.json's ``random_policy_return``).

Each task plays at PlaNet's action repeat (a 12-step horizon then looks about a second ahead on cartpole and
cheetah, half a second on walker) and about 4 episodes of MPC an iteration (``train.mpc_steps`` = 4 episodes'
agent steps): 4 random episodes, then 19 iterations of 4 MPC episodes and one fresh random episode = 99,000
env steps.

Scales:
  cpu    configs/state_dmc.yaml as it is, with each task's action repeat; seeds 0 1 2.
  smoke  configs/state_smoke.yaml (tiny ensemble, 2 iterations, 50-step episodes) with the task's env.id and
         action repeat; seed 0 (tests).
"""

from __future__ import annotations

from worldmodel.tables.mujoco import SMOKE, STATE_SMOKE_SCALE
from worldmodel.tables.types import Column, Figure, Run, Row, Scale, Table

EVAL_AT = 100_000
CONFIG = "configs/state_dmc.yaml"
EPISODE = 1000  # env steps of every dm_control episode
MPC_EPISODES = 4
# Task -> PlaNet's action repeat (Hafner et al. 2019).
TASKS: dict[str, int] = {"cartpole-swingup": 8, "cheetah-run": 4, "walker-walk": 2}

TDMPC2 = "TD-MPC2 (state), 100k"
TDMPC2_SOURCE = (
    "Hansen et al. 2024, TD-MPC2, nicklashansen/tdmpc2 results/<task>.csv: the rows at step 100000 of its three "
    "seeds, mean ± population std (state observations, action repeat 2, a learned value; ours plans without one)"
)
PUBLISHED: dict[str, dict[str, Figure]] = {
    "cartpole-swingup": {TDMPC2: (839.4, 35.2)},
    "cheetah-run": {TDMPC2: (519.1, 68.4)},
    "walker-walk": {TDMPC2: (961.9, 10.2)},
}


def task_run(task: str, repeat: int) -> Run:
    agent_steps = MPC_EPISODES * EPISODE // repeat
    every = (f"env.id=dmc:{task}", f"env.action_repeat={repeat}")
    return Run(task, None, every, {"cpu": (f"train.mpc_steps={agent_steps}",), "smoke": SMOKE}, (f"dmc:{task}",))


DMC_STATE_TABLE = Table(
    name="dmc_state",
    agent="state",
    source=TDMPC2_SOURCE,
    scales=(
        Scale(
            "cpu",
            seeds=(0, 1, 2),
            config=CONFIG,
            note="CPU scale: the CPU preset's ensemble (5 x 2x128) and CEM 250 x 3 x horizon 12, no value function.",
        ),
        STATE_SMOKE_SCALE,
    ),
    columns=(Column(TDMPC2, TDMPC2_SOURCE),),
    runs=tuple(task_run(task, repeat) for task, repeat in TASKS.items()),
    rows=tuple(Row(task, task, f"{task}, 100k env steps", PUBLISHED[task], env_steps=EVAL_AT) for task in TASKS),
)
