"""Many runs at once on Ray, from a laptop to a cluster: each trial is a normal run folder
``out/<name>/`` trained by ``python -m worldmodel.cli`` (what ``train/agent.py`` runs), as a
subprocess of a Ray task.

    trials = sweep_trials("state", "configs/state_smoke.yaml", seeds=[0, 1], grid={"planner.horizon": ["5", "10"]})
    results = run_trials(trials, Path("sweeps/horizon"))        # a local Ray, started here
    write_sweep_report(trials, Path("sweeps/horizon"))          # report.md, report.json, report.png

- A trial whose process or Ray worker dies is tried again with ``--resume`` (from its last
  checkpoint; the run drops the metrics rows logged after it), at most ``max_retries`` times.
- ``out/sweep.json`` records every trial's definition, status and attempts: running the same
  sweep again skips the finished trials and resumes the others.
- Ctrl-C cancels the running trials (each checkpoints, as on its own Ctrl-C) and leaves them resumable.
- A trial's output goes to ``out/logs/<name>.log``; an exit code of 2 (bad config) is not retried.

On a cluster (``address="ray://head:10001"`` or ``"auto"``) every node needs the project
installed and ``out`` on a shared filesystem. Without Ray (``backend="serial"``, or ``"auto"`` where Ray is
not installed) the same driver runs the attempts here, one after another (``SerialRay``): the reproduced
tables (``scripts/reproduce.py``) run their trials this way, with the same skip, resume and retry rules.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from worldmodel.errors import UserError
from worldmodel.sweep_serial import SerialRay

STATE_FILE = "sweep.json"
INSTALL_HINT = "the sweep needs Ray: pip install -e '.[sweep]' (or pip install 'ray[default]>=2.60,<3')"
USER_ERROR = 2  # the CLI's exit code for bad input: trying again would fail the same way
STOP_SECONDS = 120  # how long a cancelled trial may take to write its checkpoint


@dataclass(frozen=True)
class Trial:
    """One run of the sweep: ``out/<name>/``, trained with ``--obs obs --config config overrides...``."""

    name: str
    obs: str
    config: str | None
    overrides: tuple[str, ...] = ()


@dataclass
class TrialResult:
    name: str
    status: str
    """done (now), skipped (finished in an earlier invocation), failed, or interrupted (resumable)."""
    attempts: int
    """Processes started for it over all invocations."""
    logdir: Path


def parse_grid(items: list[str]) -> dict[str, list[str]]:
    """``["planner.horizon=5,10", "seed=..."]`` -> ``{"planner.horizon": ["5", "10"]}`` (values stay text)."""
    grid: dict[str, list[str]] = {}
    for item in items:
        key, sep, values = item.partition("=")
        if not sep or not key or not values:
            raise UserError(f"--grid {item!r} must be key=value1,value2,...")
        if key in grid:
            raise UserError(f"--grid names {key!r} twice")
        grid[key] = values.split(",")
    return grid


def sweep_trials(
    obs: str,
    config: str | Path | None,
    seeds: list[int],
    grid: dict[str, list[str]] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> list[Trial]:
    """The cross product of grid values and seeds, named like ``planner.horizon=5_seed0``."""
    grid = grid or {}
    config = str(Path(config).resolve()) if config is not None else None
    trials = []
    for values in product(*grid.values()):
        point = [f"{key}={value}" for key, value in zip(grid, values)]
        for seed in seeds:
            name = "_".join([*point, f"seed{seed}"]).replace("/", "-")
            trials.append(Trial(name, obs, config, (*overrides, *point, f"seed={seed}")))
    return trials


# ---- the state file -------------------------------------------------------------------------


def load_state(out: Path, trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """``out/sweep.json``'s trials, with the new ones added; a name reused for other settings is an error."""
    path = out / STATE_FILE
    state = json.loads(path.read_text())["trials"] if path.is_file() else {}
    for trial in trials:
        definition = {"obs": trial.obs, "config": trial.config, "overrides": list(trial.overrides)}
        known = state.setdefault(trial.name, {**definition, "status": "pending", "attempts": 0})
        if {key: known[key] for key in definition} != definition:
            raise UserError(
                f"trial {trial.name} in {out} was run with other settings ({known['overrides']}); "
                "choose another --out for this sweep"
            )
    return state


def check_configs(trials: list[Trial], out: Path) -> None:
    """Load the config of every trial that has not started yet, so that a typo is one error before Ray starts."""
    from worldmodel.agents import agent_spec
    from worldmodel.config import load_config

    for trial in trials:
        if not (out / trial.name / "config.yaml").is_file():
            load_config(agent_spec(trial.obs).config_class, trial.config, trial.overrides)


def save_state(out: Path, state: dict[str, dict[str, Any]]) -> None:
    tmp = out / f".{STATE_FILE}.tmp"
    tmp.write_text(json.dumps({"trials": state}, indent=2) + "\n")
    os.replace(tmp, out / STATE_FILE)


# ---- one attempt, on a Ray worker -----------------------------------------------------------


def trial_command(trial: Trial, logdir: Path) -> list[str]:
    """A fresh run, or ``--resume`` when the folder holds one (its config.yaml has the overrides)."""
    command = [sys.executable, "-m", "worldmodel.cli", "--obs", trial.obs]
    if (logdir / "config.yaml").is_file():
        return [*command, "--resume", str(logdir)]
    config = ["--config", trial.config] if trial.config else []
    return [*command, *config, "--logdir", str(logdir), *trial.overrides]


def die_with_parent() -> None:
    """In the trial's process: get SIGKILL when the Ray worker that started it dies (Linux)."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):
        pass  # not Linux: an orphaned trial runs on and its retry refuses nothing (it resumes the folder)


def run_attempt(trial: Trial, out: str, attempt: int) -> int:
    """Run the trial's process to its end -> exit code. Ray's cancel (a KeyboardInterrupt here)
    is passed on as SIGTERM, on which the run checkpoints and exits."""
    out_dir = Path(out)
    logdir = out_dir / trial.name
    command = trial_command(trial, logdir)
    with (out_dir / "logs" / f"{trial.name}.log").open("a") as log:
        log.write(f"== attempt {attempt}: {' '.join(command)}\n")
        log.flush()
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        process = subprocess.Popen(
            command, cwd=out_dir / "logs", stdout=log, stderr=subprocess.STDOUT, env=env, preexec_fn=die_with_parent
        )
        try:
            while True:  # short waits: Ray's cancel raises between them, not inside a blocking wait
                try:
                    return process.wait(timeout=0.5)
                except subprocess.TimeoutExpired:
                    pass
        except KeyboardInterrupt:
            process.send_signal(signal.SIGTERM)
            wait_for_checkpoint(process)
            raise


def wait_for_checkpoint(process: subprocess.Popen) -> None:
    """Wait up to ``STOP_SECONDS`` for a trial told to stop to write its checkpoint and exit, then kill it.
    A second interrupt (Ray's cancel after a Ctrl-C that reached this worker too) does not cut the wait
    short: returning early would let the driver shut Ray down, and the trial with it, mid-checkpoint."""
    deadline = time.monotonic() + STOP_SECONDS
    while True:
        try:
            process.wait(timeout=max(0.0, deadline - time.monotonic()))
            return
        except KeyboardInterrupt:
            continue
        except subprocess.TimeoutExpired:
            process.kill()
            return


# ---- the driver -----------------------------------------------------------------------------


def choose_backend(backend: str):
    """``ray`` (Ray must be installed), ``serial`` (``SerialRay``) or ``auto`` (Ray where it is installed)."""
    if backend == "serial":
        return SerialRay()
    if backend == "auto":
        try:
            return import_ray()
        except UserError:
            return SerialRay()
    if backend != "ray":
        raise UserError(f"unknown sweep backend {backend!r}; choose ray, serial or auto")
    return import_ray()


def import_ray():
    try:
        import ray
    except ImportError:
        raise UserError(INSTALL_HINT) from None
    return ray


def start_ray(ray, address: str | None, num_cpus: int | None) -> bool:
    """Connect to ``address``, or start a local Ray; True when this call started or connected it."""
    if ray.is_initialized():
        return False
    options: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        options.update(num_cpus=num_cpus or os.cpu_count(), include_dashboard=False)
    ray.init(address=address, **options)
    return True


def run_trials(
    trials: list[Trial],
    out: str | Path,
    *,
    address: str | None = None,
    cpus_per_run: float = 1,
    gpus_per_run: float = 0,
    max_concurrent: int | None = None,
    max_retries: int = 2,
    num_cpus: int | None = None,
    backend: str = "ray",
) -> list[TrialResult]:
    """Run every trial not finished yet in ``out`` on Ray (or ``backend``: see ``choose_backend``) -> one
    result per trial, in order.

    ``address``: None starts a local Ray with ``num_cpus`` (default: all cores), "auto" or
    "ray://host:port" joins a cluster. A Ray already initialised in this process is used as it is.
    """
    out = Path(out).resolve()
    names = [trial.name for trial in trials]
    if len(set(names)) != len(names):
        raise UserError(f"trial names must be unique, got {names}")
    state = load_state(out, trials)
    todo = [trial for trial in trials if state[trial.name]["status"] != "done"]
    check_configs(todo, out)  # bad input: one error, nothing written
    finished_before = {trial.name for trial in trials} - {trial.name for trial in todo}
    (out / "logs").mkdir(parents=True, exist_ok=True)
    save_state(out, state)
    if finished_before:
        print(f"sweep: {len(finished_before)} of {len(trials)} trials finished earlier, skipped", flush=True)
    if todo:
        ray = choose_backend(backend)
        if isinstance(ray, SerialRay):
            max_concurrent = 1
        started = start_ray(ray, address, num_cpus)
        try:
            drive(ray, todo, out, state, cpus_per_run, gpus_per_run, max_concurrent, max_retries)
        finally:
            if started:
                ray.shutdown()
    return [
        TrialResult(
            trial.name,
            "skipped" if trial.name in finished_before else state[trial.name]["status"],
            state[trial.name]["attempts"],
            out / trial.name,
        )
        for trial in trials
    ]


def drive(ray, todo, out, state, cpus_per_run, gpus_per_run, max_concurrent, max_retries) -> None:
    """Keep up to ``max_concurrent`` attempts in flight; retry the ones that die; mark each trial's end."""
    remote = ray.remote(max_retries=0)(run_attempt).options(num_cpus=cpus_per_run, num_gpus=gpus_per_run)
    queue: deque[Trial] = deque(todo)
    running: dict[Any, Trial] = {}
    tries: dict[str, int] = {trial.name: 0 for trial in todo}  # attempts in this invocation

    def finish(ref, stopping: bool = False) -> None:
        trial = running.pop(ref)
        try:
            code, why = ray.get(ref), None
        except ray.exceptions.RayError as err:  # the worker died, the task was cancelled ...
            code, why = None, type(err).__name__
        log, entry = out / "logs" / f"{trial.name}.log", state[trial.name]
        if code == 0:
            entry["status"] = "done"
            print(f"sweep: {trial.name} done", flush=True)
        elif stopping:
            entry["status"] = "interrupted"
        elif code != USER_ERROR and tries[trial.name] <= max_retries:
            print(f"sweep: {trial.name} stopped ({why or f'exit {code}'}); resuming it, see {log}", flush=True)
            queue.append(trial)
        else:
            entry["status"] = "failed"
            print(f"sweep: {trial.name} failed ({why or f'exit {code}'}), see {log}", flush=True)

    try:
        while queue or running:
            while queue and (max_concurrent is None or len(running) < max_concurrent):
                trial = queue.popleft()
                tries[trial.name] += 1
                state[trial.name]["attempts"] += 1
                state[trial.name]["status"] = "running"
                running[remote.remote(trial, str(out), state[trial.name]["attempts"])] = trial
                verb = "resumed" if (out / trial.name / "config.yaml").is_file() else "started"
                print(f"sweep: {trial.name} {verb} (attempt {state[trial.name]['attempts']})", flush=True)
            save_state(out, state)
            (ref,), _ = ray.wait(list(running), num_returns=1)
            finish(ref)
        save_state(out, state)
    except KeyboardInterrupt:
        print("sweep: stopping; the running trials save their checkpoints", flush=True)
        for ref in running:
            ray.cancel(ref)  # the task sends SIGTERM: the run saves its checkpoint and exits
        deadline = time.monotonic() + STOP_SECONDS
        while running and time.monotonic() < deadline:
            done, _ = ray.wait(list(running), num_returns=len(running), timeout=1)
            for ref in done:
                finish(ref, stopping=True)
        for entry in state.values():
            if entry["status"] == "running":
                entry["status"] = "interrupted"
        save_state(out, state)
        print("sweep: interrupted; every trial can continue: run the same command again", flush=True)
        raise


def write_sweep_report(trials: list[Trial], out: str | Path) -> tuple[Path, Path] | None:
    """``out/report.md`` and ``out/report.json`` over the trials with results (None when none has one)."""
    from worldmodel.logging.logger import read_metrics
    from worldmodel.report import write_report

    out = Path(out)
    logdirs = [out / trial.name for trial in trials]
    with_results = [
        logdir
        for logdir in logdirs
        if any(row.get("AverageReturn") is not None for row in read_metrics(logdir / "metrics.jsonl"))
    ]
    if not with_results:
        return None
    write_report(with_results, out / "report.md", json_out=out / "report.json")
    return out / "report.md", out / "report.json"


def summary(results: list[TrialResult]) -> str:
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    return ", ".join(f"{count} {status}" for status, count in counts.items())
