"""A run folder someone hands over must not run code: every file the loaders read is loaded without
executing anything (a pickle that would create a file is refused with one ``error:`` line, exit code 2),
and a trained agent acts from its ``policy.pt`` alone, without the checkpoint that holds the data."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.checkpoint import load_checkpoint, save_checkpoint
from worldmodel.errors import UserError

REPO = Path(__file__).resolve().parents[1]
AGENT = REPO / "train" / "agent.py"
EXPORT = REPO / "scripts" / "export_video.py"
EVALUATE = REPO / "scripts" / "evaluate_pixels.py"
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "WANDB_MODE": "disabled"}

TINY_PIXELS = [
    "logger=none", "env.max_episode_steps=8", "train.episodes=2", "train.seed_episodes=1", "train.train_steps=1",
    "train.batch_size=2", "train.chunk_length=4", "train.heldout_episodes=0", "train.eval_every=100",
    "train.media_every=100", "planner.candidates=8", "planner.elites=2", "planner.iterations=1", "planner.horizon=3",
]
TINY_STATE = [
    "logger=none", "env.episode_length=10", "model.train_steps=5", "planner.candidates=10", "planner.elites=2",
    "planner.iterations=1", "train.iterations=1", "train.video_every=0",
]


class CreatesAFile:
    """Unpickling this runs ``open(path, "w")``: the file appearing is the proof that code ran."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def write_torch_bomb(target: Path, marker: Path) -> None:
    """A torch file shaped like ours, with the bomb where the state goes."""
    torch.save({"format_version": 1, "state": {"kind": "state", "run": CreatesAFile(marker)}}, target)


def write_plain_bomb(target: Path, marker: Path) -> None:
    target.write_bytes(pickle.dumps({"state": CreatesAFile(marker)}))


def run(*args: str | Path, timeout: int = 300) -> subprocess.CompletedProcess:
    command = [sys.executable, *map(str, args)]
    return subprocess.run(command, cwd=REPO, env=ENV, capture_output=True, text=True, timeout=timeout)


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, (result.returncode, result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in result.stderr, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def pixel_run(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("pixels") / "run"
    result = run(AGENT, "--obs", "pixels", "--config", "configs/pixels_smoke.yaml", "--logdir", logdir, *TINY_PIXELS)
    assert result.returncode == 0, result.stderr[-3000:]
    return logdir


# ---- the loader itself ----------------------------------------------------------------------


@pytest.mark.parametrize("write", [write_torch_bomb, write_plain_bomb])
def test_a_pickle_that_runs_code_is_refused_without_running(tmp_path, write):
    marker = tmp_path / "created"
    write(tmp_path / "checkpoint.pt", marker)
    with pytest.raises(UserError) as info:
        load_checkpoint(tmp_path / "checkpoint.pt")
    assert not marker.exists()
    assert "\n" not in str(info.value) and str(tmp_path / "checkpoint.pt") in str(info.value)
    if write is write_torch_bomb:  # the zip format names what it would have called
        assert "refused" in str(info.value) and "open" in str(info.value)


def test_numeric_arrays_and_plain_data_load_but_an_object_array_does_not(tmp_path):
    state = {"kind": "pixels", "obs": np.arange(12, dtype=np.uint8).reshape(3, 4), "reward": np.linspace(0, 1, 3),
             "done": np.array([True, False]), "empty": np.zeros((0, 3), np.float32),
             "counters": {"episode": 3, "name": "x", "none": None}}
    loaded = load_checkpoint(save_checkpoint(tmp_path / "ok.pt", state))
    assert loaded["obs"].dtype == np.uint8 and np.array_equal(loaded["obs"], state["obs"])
    assert np.array_equal(loaded["reward"], state["reward"]) and loaded["counters"] == state["counters"]
    assert loaded["empty"].shape == (0, 3)  # an empty array pickles its data as bytes(): allowed too
    marker = tmp_path / "created"
    save_checkpoint(tmp_path / "objects.pt", {"kind": "pixels", "obs": np.array([CreatesAFile(marker)], dtype=object)})
    with pytest.raises(UserError, match="refused"):
        load_checkpoint(tmp_path / "objects.pt")
    assert not marker.exists()


# ---- every entry point, on a run folder with a bomb in each file it reads -------------------


@pytest.mark.slow
def test_resume_export_and_evaluate_refuse_a_bombed_run_folder(pixel_run, tmp_path):
    """The pixel run's own folder, copied, with a bomb written into checkpoint.pt, policy.pt and
    config.yaml in turn: --resume, export_video.py and evaluate_pixels.py each exit 2 with one line."""
    import shutil

    marker = tmp_path / "created"
    for bombed in ("checkpoint.pt", "policy.pt", "config.yaml"):
        logdir = tmp_path / bombed
        shutil.copytree(pixel_run, logdir)
        if bombed == "config.yaml":  # YAML's own way to call a function; yaml.safe_load refuses it
            (logdir / bombed).write_text(f"seed: !!python/object/apply:builtins.open ['{marker}', 'w']\n")
        else:
            write_torch_bomb(logdir / bombed, marker)
        readers = {
            "checkpoint.pt": [(AGENT, "--resume", logdir, "logger=none")],
            "policy.pt": [(EXPORT, "--run", logdir), (EVALUATE, "--run", logdir, "--episodes", "1")],
            "config.yaml": [(AGENT, "--resume", logdir, "logger=none")],  # the loaders read policy.pt's config
        }[bombed]
        for args in readers:
            line = one_error_line(run(*args))
            assert bombed in line, line
            assert not marker.exists(), (bombed, args)


# ---- acting from the policy file alone ------------------------------------------------------


@pytest.mark.slow
def test_a_pixel_policy_acts_and_films_without_the_checkpoint_and_its_data(pixel_run, tmp_path):
    from worldmodel.agents.pixel_agent import load_agent

    only_policy = tmp_path / "shared"
    only_policy.mkdir()
    (only_policy / "policy.pt").write_bytes((pixel_run / "policy.pt").read_bytes())
    (only_policy / "config.yaml").write_text((pixel_run / "config.yaml").read_text())
    saved = load_checkpoint(pixel_run / "checkpoint.pt", kind="pixels")["run"]["world_model"]["model"]
    loaded = load_agent(only_policy, device="cpu").world_model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)  # the run's last weights, all of them

    out = tmp_path / "video.mp4"
    result = run(EXPORT, "--run", only_policy, "--out", out, "--side-by-side")
    assert result.returncode == 0, result.stderr[-3000:]
    assert out.is_file() and out.stat().st_size > 0 and "mean return" in result.stdout


@pytest.mark.slow
def test_a_state_policy_file_alone_rebuilds_the_trained_ensemble(tmp_path):
    from worldmodel.agents.state_agent import load_agent, main

    logdir = main(REPO / "configs" / "state_smoke.yaml", TINY_STATE, logdir=tmp_path / "run")
    saved = load_checkpoint(logdir / "checkpoint.pt", kind="state")["run"]["model"]
    policy_file = tmp_path / "elsewhere.pt"
    policy_file.write_bytes((logdir / "policy.pt").read_bytes())
    (logdir / "checkpoint.pt").unlink()
    loaded = load_agent(tmp_path / "no-such-run", policy_file=policy_file, device="cpu").model.state_dict()
    assert loaded.keys() == saved.keys()
    assert all(torch.equal(loaded[key], saved[key]) for key in saved)  # normalisers included: they are buffers


def test_a_run_without_a_policy_file_says_how_to_get_one(tmp_path):
    from worldmodel.agents.state_agent import load_agent

    (tmp_path / "config.yaml").write_text((REPO / "configs" / "state_smoke.yaml").read_text())
    with pytest.raises(UserError, match="--resume"):
        load_agent(tmp_path)
