"""What the resume tests share: a SIGKILL that lands mid-run without a race, and metrics rows read
as raw lines (to compare byte for byte) and without their wall-clock keys (to compare two runs).

A resume and a redo from the same seed end with the same counters and, on a deterministic CPU,
the same values; what tells them apart is that a resume keeps the rows logged before its
checkpoint as they were (a redo logs them again, with another ``wall_time``), collects no warm-up
data again, and continues every random stream where the checkpoint left it.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest

from worldmodel.checkpoint import load_checkpoint
from worldmodel.logging.logger import read_metrics

# The keys of a metrics row that measure wall-clock time; every other key is a function of the seed.
# State agent: TrainTime, CollectTime, planner/ms, act_ms, steps_per_second, wall_time, policy/train_time,
# policy/label_time. Pixel agent: plan_ms, fps, wall_time and the phase times time_<phase>_s.
TIMING_KEYS = frozenset(
    {"wall_time", "TrainTime", "CollectTime", "planner/ms", "act_ms", "steps_per_second", "plan_ms", "fps"}
    | {"policy/train_time", "policy/label_time"}
)

# A guard against a hung run, not a pace: the waits below take seconds, and a run at a tenth of this
# machine's busy pace still finishes them well inside it.
HANG_GUARD_S = 600.0
POLL_S = 0.05


def metric_lines(logdir: Path) -> list[str]:
    """metrics.jsonl's complete lines, newline included (a last line cut short by a kill is left out)."""
    path = logdir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n") and line.strip()]


def without_timing(rows: list[dict[str, Any]], also: frozenset[str] = frozenset()) -> list[dict[str, Any]]:
    """The rows less their wall-clock keys (and the keys in ``also``)."""
    return [
        {k: v for k, v in row.items() if k not in TIMING_KEYS | also and not is_phase_time(k)} for row in rows
    ]


def is_phase_time(key: str) -> bool:
    """The pixel agent's ``time_<phase>_s`` keys: seconds of wall clock, as the keys above."""
    return key.startswith("time_") and key.endswith("_s")


@dataclass
class Killed:
    """A run SIGKILLed mid-run: the counter in its checkpoint, and metrics.jsonl and its output at the kill."""

    checkpoint: int
    lines: list[str]
    output: str


def kill_mid_run(
    args: list[str], logdir: Path, counter: str, done: Callable[[dict], int], first: int, cwd: Path, env: dict
) -> Killed:
    """Start the training command ``args`` (configured far longer than the test needs, so it cannot
    finish) and SIGKILL it once its checkpoint holds the counter ``first`` or more and metrics.jsonl
    holds a row logged after that checkpoint (``done(row)``: the counter once the row's step is over).

    No race: the run is frozen with SIGSTOP while the checkpoint and the rows are read, so it dies
    with exactly what was seen; if it had moved on to a newer checkpoint with no row after it yet,
    it is let go on until it logs one."""
    output = logdir.with_name(logdir.name + ".log")  # a file, not a pipe: a full pipe would stall the run
    with output.open("w") as out:
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
    metrics, deadline = logdir / "metrics.jsonl", time.monotonic() + HANG_GUARD_S
    try:
        need = first  # a row finishing past ``first`` comes after the checkpoint at ``first`` was saved
        while True:
            while not any(done(row) > need for row in read_metrics(metrics)):
                if process.poll() is not None:
                    pytest.fail(f"the run exited ({process.returncode}) before it could be killed:\n"
                                f"{output.read_text()[-3000:]}")
                if time.monotonic() > deadline:
                    pytest.fail(f"no row past a checkpoint at {need}+ in {HANG_GUARD_S:.0f} s:\n"
                                f"{output.read_text()[-3000:]}")
                time.sleep(POLL_S)
            process.send_signal(signal.SIGSTOP)
            checkpoint = load_checkpoint(logdir / "checkpoint.pt")["run"]["counters"][counter]
            if any(done(row) > checkpoint for row in read_metrics(metrics)):
                break
            need = checkpoint
            process.send_signal(signal.SIGCONT)
        lines = metric_lines(logdir)
        assert process.poll() is None, "the run ended before the kill"
        process.send_signal(signal.SIGKILL)  # delivered to a stopped process too
        process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, process.returncode
    return Killed(checkpoint, lines, output.read_text())


def rows_of(lines: list[str]) -> list[dict[str, Any]]:
    return [json.loads(line) for line in lines]
