"""The command line: key=value overrides anywhere on the line, clear errors for anything else, and
progress that is a live bar on a terminal and one line per phase in a log."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from worldmodel.cli import build_parser, parse_with_overrides
from worldmodel.logging import progress as progress_module
from worldmodel.logging.progress import PhaseLine, progress

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "state_smoke.yaml"
TINY = ["env.episode_length=5", "model.train_steps=3", "train.iterations=1", "train.random_episodes=1"]
TINY += ["train.mpc_episodes=1", "planner.candidates=10", "planner.elites=2", "train.video_every=0"]


def parse(*argv: str):
    return parse_with_overrides(build_parser(), list(argv))


def test_overrides_on_both_sides_of_a_flag():
    args = parse("--obs", "state", "planner.horizon=2", "--logdir", "X", "logger=none")
    assert args.overrides == ["planner.horizon=2", "logger=none"] and args.logdir == Path("X")


def test_flag_values_that_look_like_overrides_stay_with_their_flag():
    args = parse("--config", "a=b.yaml", "seed=3", "--logdir=runs/x=1", "--env", "dmc:cartpole-swingup")
    assert args.config == Path("a=b.yaml") and args.logdir == Path("runs/x=1") and args.overrides == ["seed=3"]


@pytest.mark.parametrize(
    "argv, word", [(["--obs", "state", "horizon"], "'horizon'"), (["--lodgir", "x", "a=1"], "'--lodgir'")]
)
def test_anything_else_is_an_error_with_exit_code_2(argv, word, capsys):
    with pytest.raises(SystemExit) as exit_info:
        parse(*argv)
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip().splitlines()[-1]
    assert error.startswith("train/agent.py: error: unrecognized argument") and word in error, error


def test_progress_is_a_bar_on_a_terminal_and_one_line_per_phase_otherwise(monkeypatch):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = progress(range(3), desc="train", unit="step")
    assert type(bar).__name__ == "tqdm"
    bar.close()

    log = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log)
    assert sum(progress(range(500), desc="train dynamics", unit="step")) == sum(range(500))
    with progress(total=10, desc="collect episode 3", unit="step") as phase:
        phase.update(1)
    lines = log.getvalue().splitlines()
    assert [line.split(" in ")[0] for line in lines] == ["train dynamics: 500 steps", "collect episode 3: 1 step"]
    assert "\r" not in log.getvalue()

    monkeypatch.setattr(progress_module, "_quiet", True)
    quiet = io.StringIO()
    monkeypatch.setattr(sys, "stderr", quiet)
    assert isinstance(progress(range(3), desc="x"), PhaseLine) and list(progress(range(3), desc="x")) == [0, 1, 2]
    assert quiet.getvalue() == ""


@pytest.mark.slow
def test_a_run_in_a_log_file_has_no_carriage_returns_and_takes_overrides_anywhere(tmp_path):
    logdir = tmp_path / "run"
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "WANDB_MODE": "disabled"}
    argv = [sys.executable, str(ROOT / "train" / "agent.py"), "--obs", "state", "planner.horizon=2"]
    argv += ["--logdir", str(logdir), "logger=none", "--config", str(SMOKE), *TINY]
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr[-3000:]
    config = yaml.safe_load((logdir / "config.yaml").read_text())
    assert config["planner"]["horizon"] == 2 and config["logger"] == "none"
    assert "\r" not in result.stdout + result.stderr
    phases = [line for line in result.stderr.splitlines() if line.startswith("train dynamics: ")]
    assert phases and phases[0].startswith("train dynamics: 3 steps in "), result.stderr
    assert any(line.startswith("Iteration=0 ") for line in result.stdout.splitlines())

    argv = [sys.executable, str(ROOT / "train" / "agent.py"), "--resume", str(logdir), "--quiet", "train.iterations=2"]
    quiet = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert "train dynamics" not in quiet.stderr and "Iteration=1 " in quiet.stdout
