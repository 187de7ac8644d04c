"""train/sweep.py on a local Ray: two seeds of the smoke config, both stopped mid-run once they have
a checkpoint (seed1 by SIGKILLing its Ray worker, seed0 by SIGKILLing its process). The sweep must
resume both from their checkpoints (the rows logged up to the checkpoint kept byte for byte, no
metrics row twice), write report.md / report.json, and a second invocation must redo nothing.
Ctrl-C leaves every trial resumable.

No step races the clock: the trials are configured far longer than a test can run, each is frozen
(SIGSTOP) before it is stopped, and its run folder's config.yaml (which --resume reads) is then cut
to a few iterations past where it stands, so the resumed trials end soon. Every wait is on a
condition, with a deadline a machine at half speed meets easily."""

from __future__ import annotations

import importlib.util
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
from worldmodel.sweep import Trial, parse_grid, sweep_trials

ROOT = Path(__file__).resolve().parents[1]
SWEEP = ROOT / "train" / "sweep.py"
SMOKE = ROOT / "configs" / "state_smoke.yaml"
NEVER = 100_000  # the trials' configured iterations: no trial can finish before the test stops it
MORE = 2  # iterations each resumed trial runs past the furthest row logged before the stop
PATIENCE = 300.0  # seconds allowed for one step of a sweep: many times what a busy 2-core machine needs
OVERRIDES = ["logger=none", "env.episode_length=30", "model.train_steps=10", "planner.candidates=20"]
OVERRIDES += ["planner.elites=4", "planner.iterations=1", f"train.iterations={NEVER}", "train.checkpoint_every=2"]
OVERRIDES += ["train.video_every=0"]


def environment() -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), WANDB_MODE="disabled")
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def sweep_command(out: Path) -> list[str]:
    # Overrides before, between and after the flags (one right after --seeds' values): taken anywhere.
    # Half a CPU per trial: both trials run at once on any machine, which the tests need.
    flags = ["--obs", "state", "--config", str(SMOKE), "--seeds", "0", "1", *OVERRIDES[2:4], "--out", str(out)]
    return [sys.executable, str(SWEEP), *OVERRIDES[:2], *flags, "--cpus-per-run", "0.5", *OVERRIDES[4:]]


def agent_process(logdir: Path) -> int | None:
    """The pid of the training process writing into ``logdir`` (from /proc), None if there is none."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"worldmodel.cli" in argv and str(logdir).encode() in argv:
            return int(proc.name)
    return None


def proc_state(pid: int) -> str | None:
    """The process's state letter from /proc (R, S, T stopped, Z zombie ...), None if it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None


def gone(pid: int) -> bool:
    return proc_state(pid) in (None, "Z")  # a zombie has exited; its new parent reaps it


def wait_for(condition, process: subprocess.Popen, what: str, log: Path, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the sweep exited ({process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


def checkpoint_iteration(logdir: Path) -> int:
    return load_checkpoint(logdir / "checkpoint.pt", kind="state")["run"]["counters"]["iteration"]


def freeze_past_checkpoint(logdir: Path, process: subprocess.Popen, log: Path) -> dict:
    """SIGSTOP the trial's process at a moment when it has logged a row past its last checkpoint
    (those rows are the ones a resume must drop and redo) -> its pid, the checkpoint's iteration and
    metrics.jsonl's bytes. It cannot move on while stopped, so what is read here is what a kill leaves."""
    metrics = logdir / "metrics.jsonl"
    while True:
        pid = agent_process(logdir)
        assert pid is not None, f"no training process for {logdir}"
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: proc_state(pid) == "T", process, f"{logdir.name} to stop", log)
        rows, checkpoint = len(read_metrics(metrics)), checkpoint_iteration(logdir)
        if rows > checkpoint:
            return {"pid": pid, "checkpoint": checkpoint, "rows": rows, "metrics": metrics.read_bytes()}
        os.kill(pid, signal.SIGCONT)  # not past the checkpoint yet: let it log one more row
        wait_for(lambda: len(read_metrics(metrics)) > rows, process, f"a row of {logdir.name} after {rows}", log)


def cut_to(logdir: Path, iterations: int) -> None:
    """Make the run in ``logdir`` end after ``iterations`` on its next --resume (its config.yaml)."""
    from worldmodel.agents.state_agent import StateAgentConfig
    from worldmodel.config import load_config, save_config

    config = load_config(StateAgentConfig, logdir / "config.yaml", [f"train.iterations={iterations}"])
    save_config(config, logdir / "config.yaml")


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sweep") / "smoke"
    log = out.with_name("sweep.log")
    with log.open("w") as f:
        process = subprocess.Popen(sweep_command(out), cwd=ROOT, env=environment(), stdout=f, stderr=subprocess.STDOUT)
    logdirs = [out / f"seed{seed}" for seed in (0, 1)]
    try:
        checkpoints = [logdir / "checkpoint.pt" for logdir in logdirs]
        wait_for(lambda: all(path.is_file() for path in checkpoints), process, "both trials' checkpoints", log)
        frozen = [freeze_past_checkpoint(logdir, process, log) for logdir in logdirs]
        length = max(stop["rows"] for stop in frozen) + MORE
        for logdir in logdirs:
            cut_to(logdir, length)
        worker = int(Path(f"/proc/{frozen[1]['pid']}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
        os.kill(worker, signal.SIGKILL)  # seed1: its Ray worker dies (the trial's process goes with it)
        os.kill(frozen[0]["pid"], signal.SIGKILL)  # seed0: its process dies, the Ray worker lives on
        deadline = time.monotonic() + 30
        while not gone(frozen[1]["pid"]) and time.monotonic() < deadline:
            time.sleep(0.05)
        agent_died_with_worker = gone(frozen[1]["pid"])
        process.wait(timeout=PATIENCE)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
        for logdir in logdirs:  # a trial's process left stopped by a failure above
            pid = agent_process(logdir)
            if pid is not None and proc_state(pid) == "T":
                os.kill(pid, signal.SIGKILL)
    assert process.returncode == 0, log.read_text()[-3000:]
    return {"out": out, "output": log.read_text(), "length": length, "frozen": frozen, "died": agent_died_with_worker}


def assert_resumed_from_checkpoint(logdir: Path, stop: dict, length: int) -> None:
    """The rows up to the checkpoint kept byte for byte (a run redone from its start would log them
    again with other wall times), the rest logged once each, the run at its end."""
    metrics = (logdir / "metrics.jsonl").read_bytes()
    kept = stop["checkpoint"]
    assert metrics.splitlines(keepends=True)[:kept] == stop["metrics"].splitlines(keepends=True)[:kept]
    assert [row["Iteration"] for row in read_metrics(logdir / "metrics.jsonl")] == list(range(length))
    assert checkpoint_iteration(logdir) == length


@pytest.mark.slow
@pytest.mark.timeout(int(4 * PATIENCE))
def test_sweep_runs_both_seeds_writes_the_report_and_a_rerun_redoes_nothing(killed_sweep):
    """Both seeds end at the length they were cut to, the report covers both, and the same command
    again starts nothing and changes no file but sweep.json."""
    out, length = killed_sweep["out"], killed_sweep["length"]
    for seed in (0, 1):
        rows = read_metrics(out / f"seed{seed}" / "metrics.jsonl")
        assert [row["Iteration"] for row in rows] == list(range(length))
        assert f"\nseed: {seed}\n" in (out / f"seed{seed}" / "config.yaml").read_text()
    report = json.loads((out / "report.json").read_text())
    (row,) = report["rows"]  # one grid point, two seeds
    assert row["runs"] == 2 and sorted(row["seeds"]) == [0, 1] and row["final_iteration"] == [length - 1]
    assert len(row["final_returns"]) == 2 and (out / "report.md").is_file()
    assert f"report in {out / 'report.md'}" in killed_sweep["output"]

    before = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file() and "report" not in path.name}
    again = subprocess.run(
        sweep_command(out), cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=PATIENCE
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 trials finished earlier, skipped" in again.stdout and "started" not in again.stdout
    after = {path: path.stat().st_mtime_ns for path in before}
    changed = [str(path) for path in before if after[path] != before[path] and path.name != "sweep.json"]
    assert changed == [], changed
    state = json.loads((out / "sweep.json").read_text())["trials"]
    assert {name: entry["status"] for name, entry in state.items()} == {"seed0": "done", "seed1": "done"}


@pytest.mark.slow
@pytest.mark.timeout(int(4 * PATIENCE))
def test_stopped_trials_are_resumed_from_their_checkpoints(killed_sweep):
    """seed1 (its Ray worker killed, its process dying with it) and seed0 (its process killed) are each
    retried once with --resume and continue from their checkpoints: the rows up to them unchanged, the
    rows logged after them dropped and logged again, each iteration once."""
    out, length = killed_sweep["out"], killed_sweep["length"]
    assert killed_sweep["died"], "the trial's process outlived its Ray worker"
    output = killed_sweep["output"]
    assert "seed1 stopped (WorkerCrashedError); resuming it" in output
    assert "seed0 stopped (exit -9); resuming it" in output
    state = json.loads((out / "sweep.json").read_text())["trials"]
    assert state["seed0"]["attempts"] == 2 and state["seed1"]["attempts"] == 2
    for seed, stop in enumerate(killed_sweep["frozen"]):
        assert 0 < stop["checkpoint"] < stop["rows"] < length  # rows past the checkpoint were dropped and redone
        assert f"== attempt 2: {sys.executable} -m worldmodel.cli --obs state --resume {out / f'seed{seed}'}\n" in (
            out / "logs" / f"seed{seed}.log"
        ).read_text()
        assert_resumed_from_checkpoint(out / f"seed{seed}", stop, length)


@pytest.mark.slow
@pytest.mark.timeout(int(4 * PATIENCE))
def test_ctrl_c_leaves_every_trial_resumable_and_the_same_command_finishes_them(tmp_path):
    """Ctrl-C: the sweep exits 130 with every trial checkpointed and marked interrupted; the same
    command resumes both from those checkpoints (the rows up to them unchanged) to their end."""
    out = tmp_path / "sweep"
    command = sweep_command(out)

    def like_a_terminal() -> None:  # its own process group, Ctrl-C not ignored (as in a background job)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()

    log = tmp_path / "sweep.log"
    with log.open("w") as f:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment(), stdout=f, stderr=subprocess.STDOUT, preexec_fn=like_a_terminal
        )
    try:
        logdirs = [out / f"seed{seed}" for seed in (0, 1)]
        checkpoints = [logdir / "checkpoint.pt" for logdir in logdirs]
        wait_for(lambda: all(path.is_file() for path in checkpoints), process, "both trials' checkpoints", log)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert process.wait(timeout=PATIENCE) == 130, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    state = json.loads((out / "sweep.json").read_text())["trials"]
    assert {entry["status"] for entry in state.values()} == {"interrupted"}, state
    stops = []
    for logdir in logdirs:
        assert "interrupted: checkpoint saved" in (out / "logs" / f"{logdir.name}.log").read_text()
        rows, metrics = len(read_metrics(logdir / "metrics.jsonl")), (logdir / "metrics.jsonl").read_bytes()
        stops.append({"checkpoint": checkpoint_iteration(logdir), "rows": rows, "metrics": metrics})
        assert stops[-1]["checkpoint"] > 0
    length = max(stop["rows"] for stop in stops) + MORE
    for logdir in logdirs:
        cut_to(logdir, length)

    again = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=PATIENCE)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count(" resumed (attempt 2)") == 2, again.stdout
    for logdir, stop in zip(logdirs, stops):
        assert_resumed_from_checkpoint(logdir, stop, length)


def test_trials_are_the_cross_product_of_grid_and_seeds():
    trials = sweep_trials("state", None, [0, 1], parse_grid(["planner.horizon=5,10"]), ["logger=none"])
    assert [t.name for t in trials] == [
        "planner.horizon=5_seed0",
        "planner.horizon=5_seed1",
        "planner.horizon=10_seed0",
        "planner.horizon=10_seed1",
    ]
    assert trials[1] == Trial("planner.horizon=5_seed1", "state", None, ("logger=none", "planner.horizon=5", "seed=1"))


def load_sweep_cli():
    spec = importlib.util.spec_from_file_location("train_sweep_cli", SWEEP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_grid_values_stay_with_their_flag_and_overrides_go_anywhere():
    from worldmodel.cli import parse_with_overrides

    cli = load_sweep_cli()
    args = parse_with_overrides(
        cli.build_parser(), ["--seeds", "0", "1", "a.b=1", "--grid", "planner.horizon=1,2", "--out", "x", "c=2"]
    )
    assert args.seeds == [0, 1] and args.grid == ["planner.horizon=1,2"] and args.overrides == ["a.b=1", "c=2"]


def test_without_ray_the_sweep_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    code = load_sweep_cli().main(["--config", str(SMOKE), "--out", str(tmp_path / "sweep")])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "pip install -e '.[sweep]'" in lines[0], lines


def test_a_bad_override_is_one_error_before_anything_runs(tmp_path, capsys):
    out = tmp_path / "sweep"
    code = load_sweep_cli().main(["--config", str(SMOKE), "--seeds", "0", "1", "--out", str(out), "planner.horizn=3"])
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and "unknown config key 'planner.horizn'" in lines[0], lines
    assert not out.exists()


def test_a_trial_name_reused_with_other_settings_is_refused(tmp_path):
    from worldmodel.errors import UserError
    from worldmodel.sweep import load_state, save_state

    out = tmp_path / "sweep"
    out.mkdir()
    save_state(out, load_state(out, [Trial("seed0", "state", None, ("seed=0",))]))
    with pytest.raises(UserError, match="was run with other settings"):
        load_state(out, [Trial("seed0", "state", None, ("seed=0", "planner.horizon=3"))])
