"""The sweep's driver (``run_trials`` -> ``drive`` -> ``run_attempt``) on a stand-in for Ray: no
processes, no clocks. Each trial's attempts end as a script says (an exit code, or its Ray worker
dying); the tests check what is retried, with which command, how attempts are counted (over
retries and over a second invocation, in sweep.json) and how many attempts run at once."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from worldmodel import sweep
from worldmodel.sweep import run_trials, sweep_trials

SMOKE = Path(__file__).resolve().parents[1] / "configs" / "state_smoke.yaml"

CRASH = "crash"  # the attempt's Ray worker dies: its process was started, get() raises a RayError


class RayError(Exception):
    pass


class WorkerCrashedError(RayError):
    pass


class TaskCancelledError(RayError):
    pass


class FakeProcess:
    """What ``run_attempt`` starts instead of ``python -m worldmodel.cli``: it records the command
    and, like the CLI, creates the run folder's config.yaml on a fresh start (not on exit code 2)."""

    def __init__(self, ray: FakeRay, command: list[str], **kwargs) -> None:
        self.ray, self.command = ray, command
        ray.commands.append(command)
        if "--logdir" in command and ray.current != sweep.USER_ERROR:
            logdir = ray.out / command[command.index("--logdir") + 1]
            logdir.mkdir(parents=True, exist_ok=True)
            (logdir / "config.yaml").write_text("seed: 0\n")

    def wait(self, timeout=None) -> int:
        return 0 if self.ray.current == CRASH else self.ray.current


class FakeRay:
    """The calls ``drive`` makes: ``remote(...)(fn).options(...).remote(args)`` runs ``fn`` at once
    (the real ``run_attempt``) and keeps its result for ``get``; ``wait`` hands out the oldest
    task first; ``cancel`` is recorded."""

    exceptions = SimpleNamespace(RayError=RayError)

    def __init__(self, outcomes: dict[str, list], out) -> None:
        self.outcomes = {name: list(script) for name, script in outcomes.items()}
        self.out = out
        self.commands: list[list[str]] = []
        self.results: dict[int, object] = {}
        self.in_flight: set[int] = set()
        self.most_in_flight = 0
        self.cancelled: list[int] = []
        self.interrupt_after: int | None = None  # KeyboardInterrupt in the wait after this many submits
        self.current = None

    def is_initialized(self) -> bool:
        return True  # run_trials neither starts nor shuts down this one

    def remote(self, max_retries: int):
        assert max_retries == 0, "Ray must not rerun a task itself: the sweep retries with --resume"
        return lambda fn: SimpleNamespace(options=lambda **resources: SimpleNamespace(remote=self.task(fn)))

    def task(self, fn):
        def submit(trial, out, attempt):
            script = self.outcomes[trial.name]
            assert script, f"{trial.name} was started more often than its script allows"
            self.current = script.pop(0)
            code = fn(trial, out, attempt)
            ref = len(self.results)
            self.results[ref] = WorkerCrashedError() if self.current == CRASH else code
            self.in_flight.add(ref)
            self.most_in_flight = max(self.most_in_flight, len(self.in_flight))
            return ref

        return submit

    def wait(self, refs, num_returns=1, timeout=None):
        if self.interrupt_after is not None and len(self.results) >= self.interrupt_after:
            self.interrupt_after = None
            raise KeyboardInterrupt
        assert len(refs) >= num_returns and set(refs) <= self.in_flight
        return list(refs[:num_returns]), list(refs[num_returns:])

    def get(self, ref):
        self.in_flight.discard(ref)
        result = self.results[ref]
        if isinstance(result, Exception):
            raise result
        return result

    def cancel(self, ref) -> None:
        self.cancelled.append(ref)
        self.results[ref] = TaskCancelledError()


@pytest.fixture
def fake_ray(monkeypatch, tmp_path):
    """``fake_ray(outcomes)`` -> the FakeRay that the next ``run_trials`` in ``tmp_path / "sweep"`` uses."""
    out = (tmp_path / "sweep").resolve()

    def make(outcomes: dict[str, list]) -> FakeRay:
        ray = FakeRay(outcomes, out)
        fake_subprocess = SimpleNamespace(
            Popen=lambda command, **kwargs: FakeProcess(ray, command, **kwargs),
            STDOUT=subprocess.STDOUT,
            TimeoutExpired=subprocess.TimeoutExpired,
        )
        monkeypatch.setattr(sweep, "subprocess", fake_subprocess)
        monkeypatch.setattr(sweep, "import_ray", lambda: ray)
        return ray

    return make


def trials(n: int = 2):
    return sweep_trials("state", None, list(range(n)), overrides=["logger=none"])


def state_file(out) -> dict[str, tuple[str, int]]:
    entries = json.loads((out / "sweep.json").read_text())["trials"]
    return {name: (entry["status"], entry["attempts"]) for name, entry in entries.items()}


def outcome(results) -> dict[str, tuple[str, int]]:
    return {result.name: (result.status, result.attempts) for result in results}


def started(ray: FakeRay, name: str) -> list[str]:
    """For each process started for trial ``name``, in order: "fresh" (--logdir) or "resume" (--resume)."""
    kinds = []
    for command in ray.commands:
        if command[-1].endswith(f"/{name}") and "--resume" in command:
            kinds.append("resume")
        elif "--logdir" in command and command[command.index("--logdir") + 1].endswith(f"/{name}"):
            kinds.append("fresh")
    return kinds


def test_exit_code_2_is_not_retried_and_marks_the_trial_failed(fake_ray, tmp_path, capsys):
    ray = fake_ray({"seed0": [sweep.USER_ERROR], "seed1": [0]})
    results = run_trials(trials(), tmp_path / "sweep", max_retries=3)
    assert outcome(results) == {"seed0": ("failed", 1), "seed1": ("done", 1)}
    assert state_file(ray.out) == outcome(results)
    assert started(ray, "seed0") == ["fresh"] and "seed0 failed (exit 2)" in capsys.readouterr().out


@pytest.mark.parametrize("max_retries", [0, 1, 3])
def test_a_dying_trial_is_resumed_at_most_max_retries_times_then_failed(fake_ray, tmp_path, max_retries):
    """seed0 dies on every attempt (its worker, or its process with a non-zero exit, by turns);
    seed1 dies max_retries times and then succeeds."""
    deaths = [CRASH if i % 2 == 0 else 1 for i in range(max_retries + 1)]
    ray = fake_ray({"seed0": deaths, "seed1": [*deaths[:max_retries], 0]})
    results = run_trials(trials(), tmp_path / "sweep", max_retries=max_retries)
    assert outcome(results) == {"seed0": ("failed", max_retries + 1), "seed1": ("done", max_retries + 1)}
    assert state_file(ray.out) == outcome(results)
    for name in ("seed0", "seed1"):
        assert started(ray, name) == ["fresh"] + ["resume"] * max_retries
        log = (ray.out / "logs" / f"{name}.log").read_text()
        attempts = [line.split(":")[0] for line in log.splitlines()]
        assert attempts == [f"== attempt {i}" for i in range(1, max_retries + 2)]
    assert ray.outcomes == {"seed0": [], "seed1": []}


def test_attempts_add_up_over_retries_and_a_second_invocation(fake_ray, tmp_path, capsys):
    out = tmp_path / "sweep"
    fake_ray({"seed0": [CRASH, -9], "seed1": [0], "seed2": [sweep.USER_ERROR]})
    first = run_trials(trials(3), out, max_retries=1)
    assert outcome(first) == {"seed0": ("failed", 2), "seed1": ("done", 1), "seed2": ("failed", 1)}
    assert "seed0 stopped (WorkerCrashedError); resuming it" in capsys.readouterr().out

    ray = fake_ray({"seed0": [1, 0], "seed1": [], "seed2": [0]})  # seed1 must not start again
    second = run_trials(trials(3), out, max_retries=1)
    assert outcome(second) == {"seed0": ("done", 4), "seed1": ("skipped", 1), "seed2": ("done", 2)}
    assert state_file(ray.out) == {"seed0": ("done", 4), "seed1": ("done", 1), "seed2": ("done", 2)}
    assert started(ray, "seed0") == ["resume", "resume"] and started(ray, "seed2") == ["fresh"]
    log = (ray.out / "logs" / "seed0.log").read_text().splitlines()
    assert log[2].startswith("== attempt 3: ") and log[3].startswith("== attempt 4: ") and "--resume" in log[3]


@pytest.mark.parametrize("max_concurrent", [1, 2, None])
def test_no_more_than_max_concurrent_attempts_run_at_once(fake_ray, tmp_path, max_concurrent):
    ray = fake_ray({f"seed{i}": [CRASH, 0] if i % 2 else [0] for i in range(5)})
    results = run_trials(trials(5), tmp_path / "sweep", max_concurrent=max_concurrent)
    assert [result.status for result in results] == ["done"] * 5
    assert [result.attempts for result in results] == [1, 2, 1, 2, 1]
    assert ray.most_in_flight == (max_concurrent or 5)


def test_ctrl_c_cancels_the_running_attempts_and_leaves_them_resumable(fake_ray, tmp_path):
    ray = fake_ray({"seed0": [0], "seed1": [CRASH, 0], "seed2": [0]})
    ray.interrupt_after = 4  # seed0 and seed1 finished, seed1's retry and seed2 running
    with pytest.raises(KeyboardInterrupt):
        run_trials(trials(3), tmp_path / "sweep", max_concurrent=2)
    assert sorted(ray.cancelled) == [2, 3] and not ray.in_flight
    assert state_file(ray.out) == {"seed0": ("done", 1), "seed1": ("interrupted", 2), "seed2": ("interrupted", 1)}


# ---- the serial backend (no Ray): the same driver, one attempt at a time -------------------


class ScriptedProcess:
    """A trial process whose exit is scripted by trial name: an exit code, or "ctrl-c" (Ctrl-C arrives while
    the driver waits on it; it then exits 130, as a run that saved its checkpoint does)."""

    scripts: dict[str, list] = {}
    started: list[str] = []

    def __init__(self, command: list[str], **kwargs) -> None:
        flag = "--logdir" if "--logdir" in command else "--resume"
        logdir = Path(command[command.index(flag) + 1])
        self.name, self.signals = logdir.name, []
        self.started.append(self.name)
        self.outcome = self.scripts[self.name].pop(0)
        if flag == "--logdir" and self.outcome != sweep.USER_ERROR:
            logdir.mkdir(parents=True, exist_ok=True)
            (logdir / "config.yaml").write_text("seed: 0\n")

    def wait(self, timeout=None) -> int:
        if self.outcome == "ctrl-c" and not self.signals:
            raise KeyboardInterrupt
        return 130 if self.outcome == "ctrl-c" else self.outcome

    def send_signal(self, signum) -> None:
        self.signals.append(signum)


@pytest.fixture
def scripted(monkeypatch):
    ScriptedProcess.started = []
    fake = SimpleNamespace(Popen=ScriptedProcess, STDOUT=subprocess.STDOUT, TimeoutExpired=subprocess.TimeoutExpired)
    monkeypatch.setattr(sweep, "subprocess", fake)
    monkeypatch.setattr(sweep, "import_ray", lambda: pytest.fail("the serial backend must not need Ray"))
    return ScriptedProcess


def test_the_serial_backend_runs_one_attempt_at_a_time_by_the_same_rules(tmp_path, scripted):
    scripted.scripts = {"a": [1, 0], "b": [sweep.USER_ERROR], "c": [0]}  # a dies once, b is bad input
    trials = sweep_trials("state", SMOKE, seeds=[0])
    trials = [sweep.Trial(name, "state", trials[0].config, ()) for name in "abc"]
    results = run_trials(trials, tmp_path / "out", backend="serial", max_retries=2)
    assert [(r.name, r.status, r.attempts) for r in results] == [("a", "done", 2), ("b", "failed", 1), ("c", "done", 1)]
    assert scripted.started == ["a", "b", "c", "a"]  # in turn; the retry (with --resume) queued behind the rest
    again = run_trials(trials, tmp_path / "out", backend="serial", max_retries=2)  # b is tried again, a and c skipped
    assert [(r.name, r.status) for r in again] == [("a", "skipped"), ("b", "failed"), ("c", "skipped")]


def test_ctrl_c_stops_the_serial_backend_and_leaves_the_trial_resumable(tmp_path, scripted):
    scripted.scripts = {"a": [0], "b": ["ctrl-c"], "c": [0]}
    trials = [sweep.Trial(name, "state", sweep_trials("state", SMOKE, seeds=[0])[0].config, ()) for name in "abc"]
    with pytest.raises(KeyboardInterrupt):
        run_trials(trials, tmp_path / "out", backend="serial")
    state = json.loads((tmp_path / "out" / "sweep.json").read_text())["trials"]
    assert {name: entry["status"] for name, entry in state.items()} == {"a": "done", "b": "interrupted", "c": "pending"}
    assert scripted.started == ["a", "b"]  # nothing starts after the Ctrl-C


class StoppingTrial:
    """A trial process told to stop: ``wait`` raises each of ``events`` in turn (an exception class) or returns."""

    def __init__(self, *events):
        self.events, self.waits, self.killed = list(events), 0, False

    def wait(self, timeout=None):
        self.waits += 1
        event = self.events.pop(0)
        if event is not None:
            raise event(*(["trial", timeout] if event is subprocess.TimeoutExpired else []))
        return 0

    def kill(self):
        self.killed = True


def test_a_second_interrupt_does_not_cut_the_wait_for_the_trials_checkpoint():
    from worldmodel.sweep import wait_for_checkpoint

    trial = StoppingTrial(KeyboardInterrupt, KeyboardInterrupt, None)  # Ray's cancel twice, then the trial exits
    wait_for_checkpoint(trial)
    assert trial.waits == 3 and not trial.killed
    slow = StoppingTrial(subprocess.TimeoutExpired)  # no exit within STOP_SECONDS: killed
    wait_for_checkpoint(slow)
    assert slow.killed
