"""train/sweep.py on a local Ray: two seeds of the smoke config, one trial's Ray worker SIGKILLed
mid-run. The sweep must finish both trials (the killed one resumed from its checkpoint, no metrics
row twice), write report.md / report.json, and a second invocation must redo nothing. Ctrl-C
leaves every trial resumable."""

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
ITERATIONS = 6
# Small enough for a shared 2-core machine, long enough that the kill lands mid-run: the runs
# checkpoint every 2 iterations, and the kill comes with the row after the first checkpoint logged.
OVERRIDES = ["logger=none", "env.episode_length=30", "model.train_steps=10", "planner.candidates=20"]
OVERRIDES += ["planner.elites=4", "planner.iterations=1", f"train.iterations={ITERATIONS}", "train.checkpoint_every=2"]


def environment() -> dict[str, str]:
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), WANDB_MODE="disabled")
    return {**env, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def sweep_command(out: Path) -> list[str]:
    # Overrides before, between and after the flags (one right after --seeds' values): taken anywhere.
    flags = ["--obs", "state", "--config", str(SMOKE), "--seeds", "0", "1", *OVERRIDES[2:4], "--out", str(out)]
    return [sys.executable, str(SWEEP), *OVERRIDES[:2], *flags, *OVERRIDES[4:]]


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


def gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state == "Z"  # a zombie has exited; its new parent reaps it


def wait_for(condition, process: subprocess.Popen, what: str, log: Path, timeout: float = 240.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            pytest.fail(f"the sweep exited ({process.returncode}) before {what}:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"timed out waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def killed_sweep(tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("sweep") / "smoke"
    log = out.with_name("sweep.log")
    with log.open("w") as f:
        process = subprocess.Popen(sweep_command(out), cwd=ROOT, env=environment(), stdout=f, stderr=subprocess.STDOUT)
    try:
        logdir = out / "seed1"
        wait_for((logdir / "checkpoint.pt").is_file, process, "seed1's first checkpoint", log)
        metrics = logdir / "metrics.jsonl"
        rows_at_checkpoint = len(read_metrics(metrics))
        wait_for(lambda: len(read_metrics(metrics)) > rows_at_checkpoint, process, "a row after it", log)
        agent = agent_process(logdir)
        assert agent is not None, "seed1 finished before it could be killed; make it longer"
        worker = int(Path(f"/proc/{agent}/stat").read_text().rsplit(")", 1)[1].split()[1])  # its parent
        rows_at_kill = len(read_metrics(metrics))
        os.kill(worker, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while not gone(agent) and time.monotonic() < deadline:
            time.sleep(0.05)
        agent_died_with_worker = gone(agent)
        process.wait(timeout=300)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    assert process.returncode == 0, log.read_text()[-3000:]
    return {"out": out, "output": log.read_text(), "rows_at_kill": rows_at_kill, "died": agent_died_with_worker}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sweep_runs_both_seeds_writes_the_report_and_a_rerun_redoes_nothing(killed_sweep):
    out = killed_sweep["out"]
    for seed in (0, 1):
        rows = read_metrics(out / f"seed{seed}" / "metrics.jsonl")
        assert [row["Iteration"] for row in rows] == list(range(ITERATIONS))
        assert (out / f"seed{seed}" / "config.yaml").read_text().startswith(f"seed: {seed}\n")
    report = json.loads((out / "report.json").read_text())
    (row,) = report["rows"]  # one grid point, two seeds
    assert row["runs"] == 2 and sorted(row["seeds"]) == [0, 1] and row["final_iteration"] == [ITERATIONS - 1]
    assert len(row["final_returns"]) == 2 and (out / "report.md").is_file()
    assert f"report in {out / 'report.md'}" in killed_sweep["output"]

    before = {path: path.stat().st_mtime_ns for path in out.rglob("*") if path.is_file() and "report" not in path.name}
    again = subprocess.run(sweep_command(out), cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 of 2 trials finished earlier, skipped" in again.stdout and "started" not in again.stdout
    after = {path: path.stat().st_mtime_ns for path in before}
    changed = [str(path) for path in before if after[path] != before[path] and path.name != "sweep.json"]
    assert changed == [], changed
    state = json.loads((out / "sweep.json").read_text())["trials"]
    assert {name: entry["status"] for name, entry in state.items()} == {"seed0": "done", "seed1": "done"}


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_a_killed_worker_is_resumed_from_its_checkpoint(killed_sweep):
    out = killed_sweep["out"]
    assert killed_sweep["died"], "the trial's process outlived its Ray worker"
    assert 0 < killed_sweep["rows_at_kill"] < ITERATIONS
    assert "seed1 stopped (WorkerCrashedError); resuming it" in killed_sweep["output"]
    state = json.loads((out / "sweep.json").read_text())["trials"]
    assert state["seed0"]["attempts"] == 1 and state["seed1"]["attempts"] == 2
    log = (out / "logs" / "seed1.log").read_text()
    assert f"--resume {out / 'seed1'}" in log
    rows = read_metrics(out / "seed1" / "metrics.jsonl")
    assert [row["Iteration"] for row in rows] == list(range(ITERATIONS))  # each row once
    counters = load_checkpoint(out / "seed1" / "checkpoint.pt", kind="state")["run"]["counters"]
    assert counters["iteration"] == ITERATIONS


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_ctrl_c_leaves_every_trial_resumable_and_the_same_command_finishes_them(tmp_path):
    out = tmp_path / "sweep"
    command = [sys.executable, str(SWEEP), "--config", str(SMOKE), "--seeds", "0", "1", "--out", str(out)]
    # Long enough that neither trial can finish between its first checkpoint and the Ctrl-C reaching it
    # (driver -> Ray cancel -> SIGTERM takes a second or two on a busy machine; 8 iterations did not).
    iterations = 40
    command += ["logger=none", "env.episode_length=20", "model.train_steps=10", f"train.iterations={iterations}"]
    command += ["train.video_every=0"]

    def like_a_terminal() -> None:  # its own process group, Ctrl-C not ignored (as in a background job)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.setsid()

    log = tmp_path / "sweep.log"
    with log.open("w") as f:
        process = subprocess.Popen(
            command, cwd=ROOT, env=environment(), stdout=f, stderr=subprocess.STDOUT, preexec_fn=like_a_terminal
        )
    try:
        checkpoints = [out / f"seed{seed}" / "checkpoint.pt" for seed in (0, 1)]
        wait_for(lambda: all(path.is_file() for path in checkpoints), process, "both trials' checkpoints", log)
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        assert process.wait(timeout=150) == 130, log.read_text()[-3000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=30)
    state = json.loads((out / "sweep.json").read_text())["trials"]
    assert {entry["status"] for entry in state.values()} == {"interrupted"}, state
    for seed in (0, 1):
        assert "interrupted: checkpoint saved" in (out / "logs" / f"seed{seed}.log").read_text()

    again = subprocess.run(command, cwd=ROOT, env=environment(), capture_output=True, text=True, timeout=240)
    assert again.returncode == 0, again.stdout[-3000:]
    assert again.stdout.count(" resumed (attempt 2)") == 2, again.stdout
    for seed in (0, 1):
        rows = read_metrics(out / f"seed{seed}" / "metrics.jsonl")
        assert [row["Iteration"] for row in rows] == list(range(iterations))


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
