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

from worldmodel.cli import build_parser, parse_with_overrides, resolve_obs
from worldmodel.errors import UserError
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


PLANET_REPEATS = {
    "dmc:cartpole-swingup": 8,
    "dmc:reacher-easy": 4,
    "dmc:cheetah-run": 4,
    "dmc:finger-spin": 2,
    "dmc:cup-catch": 4,
    "dmc:walker-walk": 2,
}


def pixel_config(*argv: str):
    """The pixel config a command line resolves to, as the run loop loads it."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig
    from worldmodel.cli import flag_overrides
    from worldmodel.config import load_config
    from worldmodel.envs.pixels import resolved_action_repeat

    args = parse("--obs", "pixels", *argv)
    cfg = load_config(PixelAgentConfig, args.config, flag_overrides(args))
    return cfg, resolved_action_repeat(cfg.env)


@pytest.mark.parametrize("env_id, repeat", PLANET_REPEATS.items())
@pytest.mark.parametrize("how", ["flag", "override"])
def test_changing_the_env_applies_its_planet_action_repeat(env_id, repeat, how):
    config = str(ROOT / "configs" / "pixels_cartpole_100k.yaml")  # action_repeat: 8
    change = ["--env", env_id] if how == "flag" else [f"env.id={env_id}"]
    cfg, resolved = pixel_config("--config", config, *change)
    assert cfg.env.id == env_id and resolved == repeat


def test_an_action_repeat_given_with_the_env_wins_wherever_it_is_on_the_line():
    config = str(ROOT / "configs" / "pixels_cartpole_100k.yaml")
    for argv in (
        ["env.action_repeat=3", "--env", "dmc:walker-walk"],
        ["--env", "dmc:walker-walk", "env.action_repeat=3"],
        ["env.id=dmc:walker-walk", "env.action_repeat=3"],
    ):
        assert pixel_config("--config", config, *argv)[1] == 3, argv


def test_the_config_keeps_its_action_repeat_while_its_env_stays(tmp_path):
    custom = tmp_path / "custom.yaml"
    custom.write_text("env:\n  id: dmc:walker-walk\n  action_repeat: 5\n")
    assert pixel_config("--config", str(custom))[1] == 5
    assert pixel_config("--config", str(custom), "--env", "dmc:walker-walk")[1] == 5  # same env: no change
    assert pixel_config("--config", str(custom), "env.image_size=64")[1] == 5
    assert pixel_config("--config", str(custom), "--env", "dmc:cheetah-run")[1] == 4
    assert pixel_config("--env", "dmc:finger-spin")[1] == 2  # the built-in default (null) follows the env too


@pytest.mark.parametrize(
    "sections,expected",
    [({"agent": "pixels"}, "pixels"), ({"agent": "state"}, "state"), ({"replay": {"capacity_mb": 64}}, "pixels"),
     ({}, "state")],
)
def test_resume_without_obs_takes_the_runs_own_agent(tmp_path, sections, expected):
    """The run's config.yaml names its agent (a folder from before it did: a replay section means pixels)."""
    (tmp_path / "config.yaml").write_text(yaml.safe_dump({"seed": 0, "env": {"id": "x"}, **sections}))
    assert resolve_obs(parse("--resume", str(tmp_path))) == expected
    assert resolve_obs(parse("--resume", str(tmp_path), "--obs", expected)) == expected  # --obs may repeat it
    assert resolve_obs(parse()) == "state"


@pytest.mark.parametrize("config,agent", [("pixels_smoke.yaml", "pixels"), ("state_smoke.yaml", "state")])
def test_a_config_names_its_agent_and_obs_may_not_contradict_it(config, agent):
    path = str(ROOT / "configs" / config)
    assert resolve_obs(parse("--config", path)) == agent
    other = "state" if agent == "pixels" else "pixels"
    with pytest.raises(UserError, match=f"config of the {agent} agent; drop --obs {other}"):
        resolve_obs(parse("--config", path, "--obs", other))
