"""The two agents, ``state`` (ensemble MPC from states, ``state_agent``) and ``pixels`` (RSSM + latent CEM,
``pixel_agent``), found by the ``agent`` value every config and every run folder's config.yaml carries:

    spec = agent_spec("pixels")                       # what the run loop needs (a runner.Agent)
    agent = declared_agent(Path("runs/x/config.yaml"))  # "state", "pixels", or None when the file names none

The command line, sweeps, scripts and reports ask here instead of guessing from a config's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from worldmodel.errors import UserError

AGENTS = ("state", "pixels")
PROGRESS_KEY = {"state": "Iteration", "pixels": "episode"}
"""The metrics key each agent's rows count their progress in (every row of both also has env_steps)."""


def agent_spec(agent: str) -> Any:
    """The ``runner.Agent`` of the ``state`` or the ``pixels`` agent (its ``kind``)."""
    if agent == "state":
        from worldmodel.agents.state_agent import STATE_SPEC as spec
    elif agent == "pixels":
        from worldmodel.agents.pixel_agent import PIXEL_SPEC as spec
    else:
        raise UserError(f"unknown agent {agent!r}; choose one of {', '.join(AGENTS)}")
    return spec


def choose_agent(asked: str | None, config_path: str | Path | None) -> str:
    """The agent to run: the one the config file names, which ``asked`` (--obs) may repeat but not
    contradict; else ``asked``; else state."""
    declared = declared_agent(config_path) if config_path is not None and Path(config_path).is_file() else None
    if asked is not None and declared is not None and asked != declared:
        raise UserError(f"{config_path} is a config of the {declared} agent; drop --obs {asked} or use --obs {declared}")
    return asked or declared or "state"


def declared_agent(config_path: str | Path) -> str | None:
    """The agent a config file names (``agent: state|pixels``), or None when it names none. A run folder
    written before configs named their agent is read as the pixel agent's when it has a replay section."""
    from worldmodel.config import read_yaml

    data = read_yaml(config_path)
    if "agent" in data:
        if data["agent"] not in AGENTS:
            raise UserError(f"{config_path}: agent must be one of {', '.join(AGENTS)}, got {data['agent']!r}")
        return data["agent"]
    return "pixels" if "replay" in data else None
