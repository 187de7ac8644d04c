"""The tables ``scripts/reproduce.py`` reproduces, one module per family:

  seed001, seed000  the seeds' homework tables on the homework cheetah (``seeds.py``, state agent)
  planet            issue 21: the pixel agent on PlaNet's six DeepMind Control tasks (``planet.py``)
  mujoco            issue 19: the state agent on four gymnasium MuJoCo tasks (``mujoco.py``)
  dmc_state         issue 19: the state agent on dm_control tasks from states, learned reward (``dmc_state.py``)
  planners          issue 20: each planner's return at a quarter, half and all of CEM's budget (``planners.py``)
  planners_pixels   issue 20: the same on the pixel agent's CPU cartpole config (``planners_pixels.py``)

``types.py`` holds what a table is made of (Scale, Column, Run, Row, Table); ``results.py`` reads the runs'
metrics into the table's rows and writes table.md and returns.png.
"""

from __future__ import annotations

from worldmodel.tables.dmc_state import DMC_STATE_TABLE
from worldmodel.tables.mujoco import MUJOCO_TABLE
from worldmodel.tables.planet import PLANET_TABLE
from worldmodel.tables.planners import PLANNERS_TABLE
from worldmodel.tables.planners_pixels import PLANNERS_PIXELS_TABLE
from worldmodel.tables.seeds import SEED000, SEED001
from worldmodel.tables.types import Column, Row, Run, Scale, Table

TABLES: dict[str, Table] = {
    table.name: table
    for table in (
        SEED001, SEED000, PLANET_TABLE, MUJOCO_TABLE, DMC_STATE_TABLE, PLANNERS_TABLE, PLANNERS_PIXELS_TABLE
    )
}

__all__ = [
    "TABLES", "SEED001", "SEED000", "PLANET_TABLE", "MUJOCO_TABLE", "DMC_STATE_TABLE", "PLANNERS_TABLE",
    "PLANNERS_PIXELS_TABLE",
    "Column", "Row", "Run", "Scale", "Table",
]
