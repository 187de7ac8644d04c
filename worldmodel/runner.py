"""The run loop both agents plug into: run folder, config, resume, checkpoints, Ctrl-C, logger.

An agent plugs in as an ``Agent``: its config class, how to make its envs and its run state, its
warm-up data, one ``iterate`` step, the counter that step advances and where a metrics row sits on
it. Its run state is a ``RunState`` (config, envs, device, random streams, counters) with the agent's
models and data as its checkpoint ``payload``. ``worldmodel.agents.agent_spec("state" | "pixels")``
finds an agent by the name its configs carry. Everything else lives here, once:

    logdir = train(STATE_SPEC, config_path="configs/state_smoke.yaml", overrides=["seed=1"])
    train(STATE_SPEC, resume=logdir)            # continue from logdir/checkpoint.pt
    load_agent(logdir)                          # act with logdir/policy.pt (the agents' load_agent)

``train`` checks the whole config, builds envs and model, and only then creates the run folder,
so bad input leaves nothing on disk. Checkpoints (``checkpoint.pt`` to resume, ``policy.pt`` to act; see
``worldmodel/checkpoint.py``) are atomic and written every ``train.checkpoint_every`` steps of the
counter, at the end and on Ctrl-C (or SIGTERM); a resumed run drops the metrics rows logged after its
checkpoint and logs them again.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from abc import ABC, abstractmethod
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Generic, TypeVar

import numpy as np
import torch

from worldmodel.checkpoint import POLICY_NAME, load_checkpoint, save_checkpoint
from worldmodel.config import load_config, save_config, to_dict
from worldmodel.cpu import tune_cpu
from worldmodel.devices import resolve_device, seed_everything
from worldmodel.errors import UserError
from worldmodel.logging.logger import Logger
from worldmodel.logging.logger import trim_metrics as logger_trim_metrics

T = TypeVar("T")
ConfigT = TypeVar("ConfigT")
RunT = TypeVar("RunT", bound="RunState")
CHECKPOINT_NAME = "checkpoint.pt"

# The run loop's clock, its own name so a test can replace it without touching time.perf_counter for the
# whole process (other threads read that too).
clock = time.perf_counter


class Agent(ABC, Generic[ConfigT, RunT]):
    """What differs between the agents, as the run loop sees it; one instance per agent
    (``state_agent.STATE_SPEC``, ``pixel_agent.PIXEL_SPEC``)."""

    kind: str
    """"state" or "pixels": the name configs, checkpoints and policy files carry, and the run folder's prefix."""
    config_class: type[ConfigT]
    """The agent's config dataclass."""
    unit: str = "iterations"
    """What ``progress`` counts, for the time-left lines."""
    checkpoint_after_warm_up: bool = False
    """Save a checkpoint as soon as the warm-up data is collected (worth it when that takes long)."""

    def prepare(self, cfg: ConfigT, checkpoint: dict[str, Any] | None) -> RunT:
        """Envs, model and data, the checkpoint (if any) loaded; nothing is written to disk, and a failure
        closes the envs again."""
        device = resolve_device(cfg.device)
        seed_everything(cfg.seed)
        envs = self.make_envs(cfg, checkpoint)
        try:
            run = self.build_run(cfg, envs, device)
            if checkpoint is not None:
                run.load_state_dict(checkpoint["run"])
        except BaseException:
            envs.close()
            raise
        return run

    @abstractmethod
    def make_envs(self, cfg: ConfigT, checkpoint: dict[str, Any] | None) -> Any:
        """The run's envs (a resumed run's may be seeded by its checkpoint's counters)."""

    @abstractmethod
    def build_run(self, cfg: ConfigT, envs: Any, device: torch.device) -> RunT:
        """A fresh run state over ``envs``: models, optimisers, empty data."""

    @abstractmethod
    def warm_up(self, run: RunT) -> bool:
        """The data before the first iteration -> whether it collected anything (a no-op once done)."""

    @abstractmethod
    def iterate(self, run: RunT, logger: Logger, logdir: Path) -> None:
        """One step of the algorithm: log one metrics row and advance ``progress``."""

    @abstractmethod
    def progress(self, run: RunT) -> int:
        """The counter ``iterate`` advances (iterations, episodes)."""

    @abstractmethod
    def length(self, cfg: ConfigT) -> int:
        """The counter's value at which the run is finished."""

    @abstractmethod
    def row_progress(self, row: dict[str, Any]) -> int:
        """The counter's value once the step that logged ``row`` was done."""

    @abstractmethod
    def describe(self, run: RunT) -> str:
        """The first line a run prints, e.g. "state agent: HalfCheetah-v5 x4 on cpu"."""

    def trim_metrics(self, path: Path, progress: int) -> None:
        """Drop the rows logged after the checkpoint taken at ``progress`` (-1: none taken) and a line a
        kill cut short: the resumed run logs them again."""
        logger_trim_metrics(path, lambda row: self.row_progress(row) <= progress)


# ---- run folders and configs ----------------------------------------------------------------


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


# ---- random streams -------------------------------------------------------------------------


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


class RunState:
    """What every run holds: config, envs, device, its random streams and wall time. An agent's run
    adds its models and data, returned by ``payload`` (the checkpoint's agent-specific part), and
    names its counters; ``state_dict`` adds the counters and every random stream."""

    counters: tuple[str, ...] = ("elapsed",)

    def __init__(self, cfg: Any, envs: Any, device: torch.device) -> None:
        self.cfg = cfg
        self.envs = envs
        self.device = device
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        self.elapsed = 0.0  # wall seconds over all resumes

    def payload(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_payload(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def policy_state(self) -> dict[str, Any]:
        """What acting needs, for ``policy.pt``: ``sizes`` (what rebuilds the model beside the config)
        and ``weights`` (the model's state dict, normalisation statistics included)."""
        raise NotImplementedError

    def attach(self, logdir: Path) -> None:
        """The run folder exists now: keep files in it beside the checkpoint (the pixel replay); no-op here."""

    def close(self) -> None:
        """Close the envs (worker processes, renderers)."""
        self.envs.close()

    def state_dict(self) -> dict[str, Any]:
        counters = {name: getattr(self, name) for name in self.counters}
        return {**self.payload(), "counters": counters, "rng": rng_state(self.rng, self.generator)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_payload(state)
        for key, value in state["counters"].items():
            setattr(self, key, value)
        restore_rng_state(state["rng"], self.rng, self.generator)


# ---- the loop -------------------------------------------------------------------------------


def crossed(before: int, after: int, every: int) -> bool:
    """Did the counter pass a multiple of ``every`` going from ``before`` to ``after``?"""
    return after // every > before // every


def save(spec: Agent, run: Any, logdir: Path) -> Path:
    """The policy file, then the checkpoint: each written whole, so a resume always finds a policy at least
    as new as its checkpoint."""
    policy = {"kind": spec.kind, "config": to_dict(run.cfg), **run.policy_state()}
    save_checkpoint(logdir / POLICY_NAME, policy)
    return save_checkpoint(logdir / CHECKPOINT_NAME, {"kind": spec.kind, "run": run.state_dict()})


@contextmanager
def further_interrupts_ignored():
    """Keep a second Ctrl-C or SIGTERM (a sweep stopping its trials may send both) from cutting the
    interrupt's checkpoint short; the first one is already being handled."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def train_loop(spec: Agent, run: Any, logger: Logger, logdir: Path) -> None:
    """Warm up, then ``iterate`` until the counter reaches its length; checkpoint every
    ``train.checkpoint_every`` steps of it, at the end and on Ctrl-C."""
    every, length = run.cfg.train.checkpoint_every, spec.length(run.cfg)
    try:
        started = clock()
        if spec.warm_up(run):
            run.elapsed += clock() - started
            if spec.checkpoint_after_warm_up:
                save(spec, run, logdir)
        first, loop_started = spec.progress(run), clock()
        while spec.progress(run) < length:
            before = spec.progress(run)
            spec.iterate(run, logger, logdir)
            if crossed(before, spec.progress(run), every) and spec.progress(run) < length:
                save(spec, run, logdir)
            # After the first iteration and every tenth of the run: a config too large for this machine
            # (a GPU config on a CPU) says so in its first minutes, not hours later.
            if before == first or crossed(before, spec.progress(run), max(1, length // 10)):
                print(time_left_line(spec, run, first, clock() - loop_started), flush=True)
    except KeyboardInterrupt:
        # Data reaches the run whole and counters move after it, so this state is consistent.
        with further_interrupts_ignored():
            save(spec, run, logdir)
            print(f"interrupted: checkpoint saved; continue with --resume {logdir}", flush=True)
        raise
    save(spec, run, logdir)


def time_left_line(spec: Agent, run: Any, first: int, seconds: float) -> str:
    """"progress: 13/100 episodes in 3.2 min, about 21 min left" at this session's pace so far."""
    done, length = spec.progress(run), spec.length(run.cfg)
    left = seconds / max(done - first, 1) * (length - done)
    return f"progress: {done}/{length} {spec.unit} in {duration(seconds)}, about {duration(left)} left"


def duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.1f} min" if seconds < 3600 else f"{seconds / 3600:.1f} h"


def train(
    spec: Agent,
    config_path: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    logdir: str | Path | None = None,
    resume: str | Path | None = None,
) -> Path:
    """Train one run (or continue it with ``resume``); validate everything before the run folder is
    created. Returns the run folder."""
    tune_cpu()  # faster CPU tensor code; see worldmodel/cpu.py
    resume = Path(resume) if resume is not None else None
    cfg = load_run_config(spec.config_class, config_path, list(overrides), resume)
    check_resume_target(logdir, resume)
    checkpoint = None
    if resume is not None and (resume / CHECKPOINT_NAME).is_file():
        checkpoint = load_checkpoint(resume / CHECKPOINT_NAME, kind=spec.kind)
    run = spec.prepare(cfg, checkpoint)
    try:
        logdir = prepare_logdir(Path(resume or logdir or default_logdir(spec.kind, cfg.env.id)), resume is not None)
        save_config(cfg, logdir / "config.yaml")  # on resume too: overrides (e.g. more iterations) stick
        if resume is not None:
            # A run killed before its first checkpoint starts over; rows past the checkpoint are redone.
            spec.trim_metrics(logdir / "metrics.jsonl", spec.progress(run) if checkpoint else -1)
        run.attach(logdir)
        print(f"{spec.describe(run)}, logging to {logdir}", flush=True)
        resumed = resume is not None
        with Logger(logdir, backend=cfg.logger, wandb_cfg=cfg.wandb, config=to_dict(cfg), resume=resumed) as logger:
            train_loop(spec, run, logger, logdir)
    finally:
        run.close()
    return logdir
