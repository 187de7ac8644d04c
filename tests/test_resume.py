"""Kill a training run with SIGKILL after its first checkpoint, ``--resume`` it, and check it ends
where an uninterrupted run ends: same number of iterations/episodes, no duplicated metrics rows,
a loadable checkpoint. For both agents, on tiny configs with ``logger=none``."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from worldmodel.checkpoint import load_checkpoint
from worldmodel.logging.logger import read_metrics

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "train" / "agent.py"

# Long enough that a kill after the first checkpoint lands mid-run, short enough for a shared CPU.
# The state agent checkpoints after iteration 2 (checkpoint_every=2): the kill comes with iteration
# 2's row logged, so the resumed run must drop that row and redo it.
STATE = {
    "obs": "state",
    "config": "configs/state_smoke.yaml",
    "key": "Iteration",
    "overrides": [
        "logger=none",
        "env.episode_length=20",
        "model.train_steps=10",
        "planner.candidates=20",
        "planner.elites=4",
        "planner.iterations=1",
        "train.iterations=4",
        "train.checkpoint_every=2",
    ],
}
# The pixel agent checkpoints after its seed episode; the kill comes once episode 2's row is logged.
PIXELS = {
    "obs": "pixels",
    "config": "configs/pixels_smoke.yaml",
    "key": "episode",
    "overrides": [
        "logger=none",
        "env.max_episode_steps=8",
        "train.episodes=5",
        "train.seed_episodes=1",
        "train.train_steps=1",
        "train.batch_size=2",
        "train.chunk_length=4",
        "train.heldout_episodes=0",
        "train.eval_every=2",
        "train.media_every=100",
        "train.checkpoint_every=100",
        "planner.candidates=8",
        "planner.elites=2",
        "planner.iterations=1",
        "planner.horizon=3",
    ],
}


def command(spec: dict, *args: str) -> list[str]:
    return [sys.executable, str(AGENT), "--obs", spec["obs"], *args]


def environment() -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), WANDB_MODE="disabled")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def train(spec: dict, logdir: Path) -> None:
    args = command(spec, "--config", spec["config"], "--logdir", str(logdir), *spec["overrides"])
    result = subprocess.run(args, cwd=REPO, env=environment(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-3000:]


def resume(spec: dict, logdir: Path) -> None:
    """``--resume LOGDIR`` alone: the run's own agent (--obs) is read from its config."""
    result = subprocess.run(
        [sys.executable, str(AGENT), "--resume", str(logdir)],
        cwd=REPO, env=environment(), capture_output=True, text=True, timeout=240,
    )
    assert result.returncode == 0, result.stderr[-3000:]


def metric_rows(logdir: Path) -> list[dict]:
    path = logdir / "metrics.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_for(condition, process: subprocess.Popen, what: str, output: Path, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            tail = output.read_text()[-3000:]
            pytest.fail(f"the run exited ({process.returncode}) before {what}; make it longer:\n{tail}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def train_and_kill(spec: dict, logdir: Path) -> int:
    """Start a run, wait for its first checkpoint and then for one more metrics row, SIGKILL it.
    Returns how many rows metrics.jsonl held at the kill."""
    args = command(spec, "--config", spec["config"], "--logdir", str(logdir), *spec["overrides"])
    output = logdir.with_name(logdir.name + ".log")  # a file, not a pipe: a full pipe would stall the run
    with output.open("w") as out:
        process = subprocess.Popen(args, cwd=REPO, env=environment(), stdout=out, stderr=subprocess.STDOUT)
    try:
        checkpoint = logdir / "checkpoint.pt"
        wait_for(checkpoint.is_file, process, "the first checkpoint", output)
        metrics = logdir / "metrics.jsonl"
        rows_at_checkpoint = len(read_metrics(metrics))  # polled: read_metrics skips a half-written line
        wait_for(lambda: len(read_metrics(metrics)) > rows_at_checkpoint, process, "a row after the checkpoint", output)
        assert process.poll() is None, "the run finished before it could be killed; make it longer"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == -signal.SIGKILL
    return len(metric_rows(logdir))


def check_resume(spec: dict, tmp_path: Path) -> None:
    key = spec["key"]
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    train(spec, whole)
    expected = [row[key] for row in metric_rows(whole)]
    assert expected and len(set(expected)) == len(expected), expected

    rows_at_kill = train_and_kill(spec, killed)
    assert 0 < rows_at_kill < len(expected), (rows_at_kill, expected)
    resume(spec, killed)

    got = [row[key] for row in metric_rows(killed)]
    assert got == expected, f"resumed run logged {key} {got}, an uninterrupted one {expected}"
    counters = [load_checkpoint(d / "checkpoint.pt", kind=spec["obs"])["run"]["counters"] for d in (whole, killed)]
    for c in counters:
        c.pop("elapsed", None)  # wall time differs, everything else must not
    assert counters[0] == counters[1], counters


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_state_agent_resumes_after_sigkill(tmp_path):
    check_resume(STATE, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_pixel_agent_resumes_after_sigkill(tmp_path):
    check_resume(PIXELS, tmp_path)


def test_a_second_signal_does_not_cut_the_interrupt_checkpoint_short(tmp_path, monkeypatch):
    """A sweep stopping its trials can deliver Ctrl-C and SIGTERM close together: the checkpoint the
    first one starts must still be written, and the run still ends as interrupted."""
    from worldmodel import runner

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)  # what the CLI installs
    saved = []

    def save_hit_by_sigterm(spec, run, logdir):
        os.kill(os.getpid(), signal.SIGTERM)  # arrives while the checkpoint is being written
        time.sleep(0.05)
        saved.append(run)

    class Spec:
        def warm_up(self, run):
            raise KeyboardInterrupt  # the first Ctrl-C

        def length(self, cfg):
            return 1

    class Run:
        class cfg:
            class train:
                checkpoint_every = 1

    monkeypatch.setattr(runner, "save", save_hit_by_sigterm)
    try:
        with pytest.raises(KeyboardInterrupt):
            runner.train_loop(Spec(), Run(), logger=None, logdir=tmp_path)
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert len(saved) == 1


def test_the_loop_says_how_long_is_left_after_the_first_iteration_and_every_tenth(tmp_path, monkeypatch, capsys):
    """A run prints its pace early, so a config too large for the machine shows it in minutes."""
    from dataclasses import replace

    from worldmodel import runner

    clock = iter(range(0, 10_000, 30))  # every perf_counter call is 30 s later
    monkeypatch.setattr(runner, "clock", lambda: next(clock))
    monkeypatch.setattr(runner, "save", lambda spec, run, logdir: None)

    class Run:
        progress = 0
        elapsed = 0.0

        class cfg:
            class train:
                checkpoint_every = 100

    def iterate(run, logger, logdir):
        run.progress += 1

    spec = runner.RunSpec(
        kind="pixels", config_class=object, prepare=None, warm_up=lambda run: False, iterate=iterate,
        progress=lambda run: run.progress, length=lambda cfg: 20, trim_metrics=None, describe=None,
    )
    runner.train_loop(replace(spec, unit="episodes"), Run(), logger=None, logdir=tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("progress:")]
    assert [line.split()[1] for line in lines] == ["1/20", "2/20", *(f"{n}/20" for n in range(4, 21, 2))]
    assert lines[0] == "progress: 1/20 episodes in 30 s, about 9.5 min left"
    assert lines[-1].endswith("about 0 s left")
