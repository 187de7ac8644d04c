"""The pixel replay on disk: each episode written once as its own file, read back on resume (the
newest that fit the memory cap), episodes past the checkpoint dropped, a damaged file skipped with a
warning; and a pixel run SIGKILLed while it writes an episode file resumes with no half episode in its
replay and no metrics row twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from worldmodel.checkpoint import load_checkpoint
from worldmodel.data.episodes import EpisodeReplay, ReplayConfig

REPO = Path(__file__).resolve().parents[1]
SHAPE, A = (3, 8, 8), 2


def episode(rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    obs = rng.integers(0, 256, size=(length, *SHAPE), dtype=np.uint8)  # (T, C, H, W)
    return obs, rng.normal(size=(length, A)).astype(np.float32), rng.normal(size=length).astype(np.float32)


def ordered(replay: EpisodeReplay) -> dict[str, np.ndarray]:
    """The stored steps, oldest first, independent of where the ring put them."""
    return {key: array[replay._ordered()] for key, array in replay.arrays().items()}


def filled(folder: Path | None, lengths: list[int], cap_steps: int | None = None) -> EpisodeReplay:
    replay = EpisodeReplay(ReplayConfig(capacity_steps=cap_steps), SHAPE, A)
    if folder is not None:
        replay.keep_on_disk(folder)
    rng = np.random.default_rng(0)
    for length in lengths:
        replay.add_episode(*episode(rng, length))
    return replay


def test_episodes_are_written_once_and_read_back_as_they_were(tmp_path):
    replay = filled(tmp_path / "replay", [5, 7, 6])
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == ["000000-5.npz", "000001-7.npz", "000002-6.npz"]
    again = EpisodeReplay(ReplayConfig(), SHAPE, A)
    again.keep_on_disk(tmp_path / "replay", replay.disk_state())
    for key, array in ordered(replay).items():
        np.testing.assert_array_equal(ordered(again)[key], array, err_msg=key)
    assert again.episodes == 3 and again.total_steps == replay.total_steps == 18


def test_resume_drops_episodes_written_after_the_checkpoint(tmp_path):
    replay = filled(tmp_path / "replay", [5, 7])
    state = replay.disk_state()  # the checkpoint
    replay.add_episode(*episode(np.random.default_rng(9), 4))  # then one more, and the run is killed
    (tmp_path / "replay" / ".000003-4.npz.tmp").write_bytes(b"half a file")  # killed while writing the next
    again = EpisodeReplay(ReplayConfig(), SHAPE, A)
    again.keep_on_disk(tmp_path / "replay", state)
    assert len(again) == 12 and again.episodes == 2
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == ["000000-5.npz", "000001-7.npz"]
    again.add_episode(*episode(np.random.default_rng(1), 3))  # the resumed run writes episode 2 anew
    assert (tmp_path / "replay" / "000002-3.npz").is_file()


def test_resume_reads_only_the_newest_episodes_the_cap_holds(tmp_path):
    lengths = [5, 7, 6, 4]
    uncapped = filled(tmp_path / "replay", lengths)
    capped = EpisodeReplay(ReplayConfig(capacity_steps=9), SHAPE, A)
    capped.keep_on_disk(tmp_path / "replay", uncapped.disk_state())
    assert len(capped) == 9  # the last 4 steps of episode 2 and all of episode 3
    for key, array in ordered(uncapped).items():
        np.testing.assert_array_equal(ordered(capped)[key], array[-9:], err_msg=key)
    # The same as a replay that had the cap all along.
    always = filled(None, lengths, cap_steps=9)
    for key, array in ordered(always).items():
        np.testing.assert_array_equal(ordered(capped)[key], array, err_msg=key)


def test_a_damaged_episode_file_is_skipped_with_a_warning(tmp_path, capsys):
    replay = filled(tmp_path / "replay", [5, 7, 6])
    damaged = tmp_path / "replay" / "000001-7.npz"
    damaged.write_bytes(damaged.read_bytes()[:100])
    again = EpisodeReplay(ReplayConfig(), SHAPE, A)
    again.keep_on_disk(tmp_path / "replay", replay.disk_state())
    assert len(again) == 11 and again.episodes == 2  # episodes 0 and 2, whole
    expected = ordered(replay)
    np.testing.assert_array_equal(ordered(again)["obs"], np.concatenate([expected["obs"][:5], expected["obs"][12:]]))
    assert "000001-7.npz is damaged" in capsys.readouterr().err


def test_steps_in_memory_from_an_old_checkpoint_are_written_out_as_episodes(tmp_path):
    old = filled(None, [5, 7, 6], cap_steps=15)  # the oldest episode lost its first 3 steps to the cap
    replay = EpisodeReplay(ReplayConfig(capacity_steps=15), SHAPE, A)
    replay.load_state_dict(old.state_dict())  # what a checkpoint of the old format restores
    replay.keep_on_disk(tmp_path / "replay")
    assert sorted(p.name for p in (tmp_path / "replay").iterdir()) == ["000000-2.npz", "000001-7.npz", "000002-6.npz"]
    again = EpisodeReplay(ReplayConfig(capacity_steps=15), SHAPE, A)
    again.keep_on_disk(tmp_path / "replay", replay.disk_state())
    for key, array in ordered(old).items():
        np.testing.assert_array_equal(ordered(again)[key], array, err_msg=key)


# ---- a real pixel run, killed while writing an episode file --------------------------------

TINY = [
    "logger=none", "env.max_episode_steps=16", "train.episodes=6", "train.seed_episodes=2", "train.train_steps=2",
    "train.batch_size=2", "train.chunk_length=4", "train.heldout_episodes=1", "train.eval_every=100",
    "train.media_every=100", "train.checkpoint_every=2", "planner.candidates=8", "planner.elites=2",
    "planner.iterations=1", "planner.horizon=3",
]
# Runs train/agent.py with episode writes patched: the write of replay episode KILL_AT puts half its
# bytes into the temporary file and then SIGKILLs its own process, as a kill at that moment would.
KILLING_RUN = """
import os, runpy, signal, sys
from worldmodel.data import episode_files
kill_at, write = int(os.environ["KILL_AT"]), episode_files.EpisodeFolder.write
def write_then_die(self, index, steps):
    if self.path.name == "replay" and index == kill_at:
        (self.path / f".{index:06d}-{len(steps['obs'])}.npz.tmp").write_bytes(b"PK" + bytes(1000))
        os.kill(os.getpid(), signal.SIGKILL)
    return write(self, index, steps)
episode_files.EpisodeFolder.write = write_then_die
sys.argv = ["train/agent.py", *sys.argv[1:]]
runpy.run_path("train/agent.py", run_name="__main__")
"""


def rows(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_a_run_killed_while_writing_an_episode_resumes_without_half_an_episode(tmp_path):
    logdir = tmp_path / "run"
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "KILL_AT": "4"}
    args = ["--obs", "pixels", "--config", "configs/pixels_smoke.yaml", "--logdir", str(logdir), *TINY]
    killed = subprocess.run([sys.executable, "-c", KILLING_RUN, *args], cwd=REPO, env=env, capture_output=True,
                            text=True, timeout=600)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-3000:]
    # Killed while writing episode 4 (index 4: the fifth): the checkpoint after episode 4 counts 4.
    checkpoint = load_checkpoint(logdir / "checkpoint.pt", kind="pixels")["run"]
    assert checkpoint["counters"]["episode"] == 4 and checkpoint["replay"]["episodes"] == 4
    assert any(p.name.endswith(".tmp") for p in (logdir / "replay").iterdir())
    rows_before = (logdir / "metrics.jsonl").read_text().splitlines()

    resumed = subprocess.run([sys.executable, "train/agent.py", "--resume", str(logdir)], cwd=REPO, env=env,
                             capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert [row["episode"] for row in rows(logdir)] == [3, 4, 5, 6]
    assert (logdir / "metrics.jsonl").read_text().splitlines()[: len(rows_before)] == rows_before
    files = sorted(p.name for p in (logdir / "replay").iterdir())
    assert files == [f"{i:06d}-17.npz" for i in range(6)], files  # whole episodes only, none twice
    for file in (logdir / "replay").iterdir():
        with np.load(file) as data:
            assert data["obs"].shape == (17, 3, 64, 64) and data["is_first"].tolist() == [True] + [False] * 16
