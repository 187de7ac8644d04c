"""Small pieces both agents share: devices, seeding, run folders."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, TypeVar

import numpy as np
import torch

from worldmodel.config import load_config
from worldmodel.errors import UserError

T = TypeVar("T")


@dataclass
class WandbConfig:
    project: str = "worldmodel"
    """wandb project the run is filed under."""
    name: str | None = None
    """Run name; defaults to the run folder's name."""
    group: str | None = None
    """Optional group, e.g. one per config when running several seeds."""
    tags: list[str] = field(default_factory=list)
    """Free-form tags."""
    mode: Literal["offline", "online", "disabled"] = "offline"
    """offline needs no account or network; the WANDB_MODE environment variable wins over this."""


def resolve_device(name: str) -> torch.device:
    """``auto`` -> cuda when available, else cpu. ``cuda`` without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("device 'cuda' was asked for but torch sees no GPU; use --device cpu or --device auto")
    if name != "cpu" and not name.startswith("cuda"):
        raise UserError(f"unknown device {name!r}; valid: auto, cpu, cuda")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def default_logdir(obs: str, env_id: str) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_env = env_id.replace(":", "-").replace("/", "-")
    return Path("runs") / f"{obs}_{safe_env}_{stamp}"


def prepare_logdir(logdir: Path, resume: bool) -> Path:
    """Create a fresh run folder; refuse to write into one that already holds a run."""
    if resume:
        if not (logdir / "config.yaml").is_file():
            raise UserError(f"cannot resume: {logdir} holds no run (no config.yaml)")
        return logdir
    if logdir.exists() and any(logdir.iterdir()):
        raise UserError(
            f"logdir {logdir} already holds files; choose another --logdir or continue it with --resume {logdir}"
        )
    logdir.mkdir(parents=True, exist_ok=True)
    return logdir


def load_run_config(cls: type[T], config_path: Path | None, overrides: list[str], resume: Path | None) -> T:
    """The run's config: from ``config_path`` (or the defaults), or from ``resume/config.yaml`` when resuming."""
    if resume is None:
        return load_config(cls, config_path, overrides)
    if config_path is not None:
        raise UserError(f"--config cannot be combined with --resume: the run continues with {resume}/config.yaml")
    if not (resume / "config.yaml").is_file():
        raise UserError(f"cannot resume: {resume} holds no run (no config.yaml)")
    return load_config(cls, resume / "config.yaml", overrides)


def check_resume_target(logdir: Path | None, resume: Path | None) -> None:
    if resume is not None and logdir is not None and Path(logdir).resolve() != Path(resume).resolve():
        raise UserError("--logdir and --resume name different folders; --resume LOGDIR alone continues that run")


def rng_state(rng: np.random.Generator, planner_generator: torch.Generator) -> dict[str, Any]:
    """Every random stream a run draws from, for its checkpoint."""
    return {
        "numpy": rng.bit_generator.state,
        "planner": planner_generator.get_state(),
        "torch": torch.get_rng_state(),
        "python": random.getstate(),
    }


def restore_rng_state(state: dict[str, Any], rng: np.random.Generator, planner_generator: torch.Generator) -> None:
    rng.bit_generator.state = state["numpy"]
    planner_generator.set_state(state["planner"])
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
