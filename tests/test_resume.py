"""Kill a training run with SIGKILL mid-run, ``--resume`` it, and check it resumed rather than redid
the run: the rows logged before its checkpoint kept byte for byte, no warm-up data collected again,
the rows the kill lost logged again with the same values, and (state agent) every row equal to an
uninterrupted run's. For both agents, on tiny configs with ``logger=none``.

No race by construction: the killed run is configured for 1000 iterations/episodes, frozen and
SIGKILLed once a row past a checkpoint is logged (see ``resume_checks.kill_mid_run``), and resumed
to two steps past that checkpoint (or more), the length given as an override on the ``--resume`` line."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel import runner
from worldmodel.checkpoint import load_checkpoint
from worldmodel.cli import agent_spec
from worldmodel.config import load_config

from resume_checks import HANG_GUARD_S, kill_mid_run, metric_lines, rows_of, without_timing  # tests/resume_checks.py

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "train" / "agent.py"
KILLED_LENGTH = 1000  # far more than the test waits for: the killed run cannot finish first

# The state agent checkpoints every 2 iterations; no row depends on the run's length (collect_after_last
# is on and no videos), so the killed 1000-iteration run's rows are those of the shorter one.
STATE = {
    "obs": "state",
    "config": "configs/state_smoke.yaml",
    "length": "train.iterations",
    "counter": "iteration",
    "done": lambda row: row["Iteration"] + 1,  # iterations completed once the row's iteration is over
    "warm_up": ("random policy:", "random 1/"),  # the random-policy episodes' lines
    "agent": "state agent:",
    "played": frozenset(),  # every lost row is redone with the same values
    "redone": None,
    "overrides": [
        "logger=none",
        "env.episode_length=20",
        "model.train_steps=10",
        "planner.candidates=20",
        "planner.elites=4",
        "planner.iterations=1",
        "train.checkpoint_every=2",
        "train.video_every=0",
    ],
}
# The pixel agent checkpoints after its seed episode and every 2 episodes. A resumed run's envs are
# seeded anew (their simulator state is not in the checkpoint), so only the first lost row's training
# metrics (model, replay and random streams restored) come again the same, not its episode's returns.
PIXELS = {
    "obs": "pixels",
    "config": "configs/pixels_smoke.yaml",
    "length": "train.episodes",
    "counter": "episode",
    "done": lambda row: row["episode"],
    "warm_up": ("seed episode", "held-out episode"),
    "agent": "pixel agent:",
    "played": frozenset({"train_return", "AverageReturn"}),
    "redone": 1,
    "overrides": [
        "logger=none",
        "env.max_episode_steps=8",
        "train.seed_episodes=1",
        "train.train_steps=1",
        "train.batch_size=2",
        "train.chunk_length=4",
        "train.heldout_episodes=0",
        "train.eval_every=2",
        "train.media_every=100",
        "train.checkpoint_every=2",
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


def run(args: list[str]) -> str:
    """Run a training command to its end -> its output (stdout and stderr)."""
    result = subprocess.run(
        args, cwd=REPO, env=environment(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return result.stdout


def check_resume(spec: dict, tmp_path: Path) -> None:
    done = spec["done"]
    killed_dir = tmp_path / "killed"
    args = command(spec, "--config", spec["config"], "--logdir", str(killed_dir), *spec["overrides"])
    killed = kill_mid_run(
        [*args, f"{spec['length']}={KILLED_LENGTH}"], killed_dir, spec["counter"], done, 2, REPO, environment()
    )
    at = killed.checkpoint
    assert 2 <= at < KILLED_LENGTH, at  # killed mid-run, after a checkpoint with rows before it
    kept = [line for line in killed.lines if done(json.loads(line)) <= at]
    lost = [row for row in rows_of(killed.lines) if done(row) > at]
    assert kept and lost, killed.lines

    # --resume LOGDIR alone: the run's own agent (--obs) is read from its config; the length sticks.
    length = max(at + 2, *(done(row) for row in lost))
    output = run([sys.executable, str(AGENT), "--resume", str(killed_dir), f"{spec['length']}={length}"])
    assert spec["agent"] in output, output[-3000:]
    warm_up = [line for line in output.splitlines() if line.startswith(spec["warm_up"])]
    assert not warm_up, f"the resumed run collected its warm-up data again: {warm_up}"

    lines = metric_lines(killed_dir)
    assert lines[: len(kept)] == kept, "rows logged before the checkpoint were rewritten (a redo?)"
    rows = rows_of(lines)
    expected = [done(row) for row in rows_of(kept)] + list(range(at + 1, length + 1))
    assert [done(row) for row in rows] == expected, "rows missing or logged twice"
    redone = lost if spec["redone"] is None else lost[: spec["redone"]]
    again = rows[len(kept) : len(kept) + len(redone)]
    assert without_timing(again, spec["played"]) == without_timing(redone, spec["played"]), (
        "the resumed run did not continue from the checkpoint's model, data and random streams"
    )
    resumed = load_checkpoint(killed_dir / "checkpoint.pt", kind=spec["obs"])["run"]
    assert resumed["counters"][spec["counter"]] == length
    if spec["obs"] == "state":
        check_like_uninterrupted(args, tmp_path / "whole", spec["length"], length, rows, resumed)


def check_like_uninterrupted(args: list[str], logdir: Path, key: str, length: int, rows: list, resumed: dict) -> None:
    """The state agent on a CPU is deterministic (two runs of one config log the same values): the
    resumed run must log every row, and end with the model and data, of an uninterrupted run."""
    args[args.index("--logdir") + 1] = str(logdir)
    run([*args, f"{key}={length}"])
    assert without_timing(rows) == without_timing(rows_of(metric_lines(logdir))), "resumed != uninterrupted"
    whole = load_checkpoint(logdir / "checkpoint.pt", kind="state")["run"]
    for part in ("model", "buffer"):
        for name, value in whole[part].items():
            assert torch.equal(torch.as_tensor(value), torch.as_tensor(resumed[part][name])), (part, name)
    counters = [dict(c["counters"], elapsed=None) for c in (whole, resumed)]  # elapsed: wall time
    assert counters[0] == counters[1], counters


@pytest.mark.slow
@pytest.mark.timeout(3 * HANG_GUARD_S)
def test_state_agent_resumes_after_sigkill(tmp_path):
    check_resume(STATE, tmp_path)


@pytest.mark.slow
@pytest.mark.timeout(3 * HANG_GUARD_S)
def test_pixel_agent_resumes_after_sigkill(tmp_path):
    check_resume(PIXELS, tmp_path)


# Tiny runs whose warm-up data (the first draws of every stream) takes a second or two.
RESTORE = {
    "state": (STATE, ["env.episode_length=5", "train.random_episodes=2"]),
    "pixels": (PIXELS, ["env.max_episode_steps=4", "train.episodes=3"]),
}


def assert_same(saved, restored, where: str = "run") -> None:
    """Nested dicts, lists, tensors, arrays and plain values, equal to the bit."""
    if isinstance(saved, dict):
        assert saved.keys() == restored.keys(), where
        for key in saved:
            assert_same(saved[key], restored[key], f"{where}.{key}")
    elif isinstance(saved, (list, tuple)):
        assert len(saved) == len(restored), where
        for i, (a, b) in enumerate(zip(saved, restored)):
            assert_same(a, b, f"{where}[{i}]")
    elif isinstance(saved, (torch.Tensor, np.ndarray)):
        assert torch.equal(torch.as_tensor(saved), torch.as_tensor(restored)), where
    else:
        assert saved == restored, where


@pytest.mark.parametrize("obs", ["state", "pixels"])
def test_prepare_with_a_checkpoint_continues_every_random_stream(obs, tmp_path):
    """A run rebuilt from its checkpoint by the agent's ``prepare`` (and attached to its run folder,
    as ``runner.train`` does) is the saved run, not a fresh one from the same seed: its state (model,
    optimizer, data, counters, every random stream) comes back to the bit, and the numpy stream and the
    generator the planner draws from continue where the saved run's do. The run's warm-up data and a
    few extra draws move every stream off its seed first."""
    spec_dict, overrides = RESTORE[obs]
    spec = agent_spec(obs)
    cfg = load_config(spec.config_class, REPO / spec_dict["config"], [*spec_dict["overrides"], *overrides])
    run = spec.prepare(cfg, None)
    try:
        run.attach(tmp_path)
        assert spec.warm_up(run)
        run.rng.random(3), torch.rand(3, generator=run.generator), torch.rand(3), random.random()
        saved = {**run.state_dict(), **data(run)}
        runner.save(spec, run, tmp_path)
        restored = spec.prepare(cfg, load_checkpoint(tmp_path / "checkpoint.pt", kind=obs))
        try:
            restored.attach(tmp_path)
            assert_same(saved, {**restored.state_dict(), **data(restored)})
            assert not spec.warm_up(restored), "a restored run collected its warm-up data again"
            assert restored.planner.generator is restored.generator
            for a, b in ((run, restored), (restored, run)):  # the next draws, taken in both orders
                assert a.rng.random() == b.rng.random()
                assert torch.equal(torch.rand(4, generator=a.planner.generator), torch.rand(4, generator=b.generator))
        finally:
            restored.close()
    finally:
        run.close()
    fresh = np.random.default_rng(cfg.seed)
    assert saved["rng"]["numpy"] != fresh.bit_generator.state  # the streams had moved off the seed


def data(run) -> dict:
    """The pixel run's episodes, which its checkpoint counts and its run folder holds (the state run's
    transitions are in its ``state_dict``)."""
    if not hasattr(run, "replay"):
        return {}
    return {"replay_steps": run.replay.state_dict(), "heldout_steps": run.heldout.state_dict()}


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


def test_the_cli_handles_the_first_interrupt_only_however_soon_the_second_comes():
    """Ctrl-C reaches a sweep's run and its Ray worker at once, and the worker then sends SIGTERM: the
    second signal may land before the loop's ``except`` is reached, so the CLI's handler must already
    ignore it. The first signal raises KeyboardInterrupt; SIGINT and SIGTERM after it do nothing."""
    from worldmodel.cli import interrupt_once_on_sigint_or_sigterm

    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        interrupt_once_on_sigint_or_sigterm()
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # the handler runs here
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)  # would raise here if either were still handled
        assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def test_the_loop_says_how_long_is_left_after_the_first_iteration_and_every_tenth(tmp_path, monkeypatch, capsys):
    """A run prints its pace early, so a config too large for the machine shows it in minutes."""

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

    class Counting(runner.Agent):
        kind, config_class, unit = "pixels", object, "episodes"
        make_envs = build_run = row_progress = describe = None

        def warm_up(self, run):
            return False

        def iterate(self, run, logger, logdir):
            run.progress += 1

        def progress(self, run):
            return run.progress

        def length(self, cfg):
            return 20

    runner.train_loop(Counting(), Run(), logger=None, logdir=tmp_path)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("progress:")]
    assert [line.split()[1] for line in lines] == ["1/20", "2/20", *(f"{n}/20" for n in range(4, 21, 2))]
    assert lines[0] == "progress: 1/20 episodes in 30 s, about 9.5 min left"
    assert lines[-1].endswith("about 0 s left")
