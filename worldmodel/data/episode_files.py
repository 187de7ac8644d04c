"""A run's episodes on disk: one compressed ``.npz`` per finished episode (as Dreamer keeps them), each
written once and never rewritten, so a checkpoint never copies the data and its cost does not grow with it.

    folder = EpisodeFolder(logdir / "replay")
    folder.write(7, {"obs": obs, "action": action, "reward": reward, "is_first": is_first})  # episode 7
    folder.forget_from(8)                   # drop episodes 8, 9, ... (written after the checkpoint)
    for steps in folder.read(8, max_steps=100_000): ...   # the newest of episodes 0..7 that fit, oldest first

A file is written to a temporary name and renamed, so a kill while writing leaves no file under an
episode's name; a file that still cannot be read whole (a disk that filled up, a copy cut short) is
skipped with a warning, never half loaded. Files are named ``{index:06d}-{length}.npz``: which episodes
fit a memory cap is known without opening them. ``np.load(allow_pickle=False)`` reads arrays only.
"""

from __future__ import annotations

import os
import re
import sys
import zipfile
from pathlib import Path

import numpy as np

FIELDS = ("obs", "action", "reward", "is_first")
NAME = re.compile(r"^(\d{6,})-(\d+)\.npz$")


class EpisodeFolder:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def episodes(self) -> dict[int, tuple[int, Path]]:
        """index -> (length, file) of every episode file in the folder."""
        if not self.path.is_dir():
            return {}
        found = {}
        for file in self.path.iterdir():
            match = NAME.match(file.name)
            if match:
                found[int(match[1])] = (int(match[2]), file)
        return found

    def write(self, index: int, steps: dict[str, np.ndarray]) -> Path:
        """Episode ``index``: obs uint8 (T, C, H, W), action (T, A), reward (T,), is_first (T,)."""
        self.path.mkdir(parents=True, exist_ok=True)
        file = self.path / f"{index:06d}-{len(steps['obs'])}.npz"
        tmp = self.path / f".{file.name}.tmp"
        with tmp.open("wb") as f:
            np.savez_compressed(f, **{key: steps[key] for key in FIELDS})
        os.replace(tmp, file)
        return file

    def forget_from(self, count: int) -> None:
        """Delete the episodes numbered ``count`` and later (a resumed run collects them again) and any
        temporary file a kill left behind."""
        for index, (_, file) in self.episodes().items():
            if index >= count:
                file.unlink()
        if self.path.is_dir():
            for tmp in self.path.glob(".*.tmp"):
                tmp.unlink()

    def read(self, count: int, max_steps: int) -> list[dict[str, np.ndarray]]:
        """Of episodes 0..count-1, the newest whose steps reach ``max_steps`` (the oldest of them may be
        needed only in part), whole and oldest first; a missing or damaged one is skipped with a warning."""
        known = self.episodes()
        chosen, steps = [], 0
        for index in range(count - 1, -1, -1):
            if steps >= max_steps:
                break
            if index not in known:
                warn(f"replay: episode {index} is missing from {self.path}; going on without it")
                continue
            chosen.append(known[index][1])
            steps += known[index][0]
        loaded = (load_episode(file) for file in reversed(chosen))
        return [episode for episode in loaded if episode is not None]


def load_episode(file: Path) -> dict[str, np.ndarray] | None:
    """One episode file, read whole and checked, or None (with a warning) when it cannot be."""
    try:
        with np.load(file, allow_pickle=False) as data:
            steps = {key: data[key] for key in FIELDS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as err:
        warn(f"replay: {file} is damaged ({type(err).__name__}: {err}); skipped")
        return None
    lengths = {len(array) for array in steps.values()}
    if len(lengths) != 1 or lengths.pop() != int(NAME.match(file.name)[2]):
        warn(f"replay: {file} holds fields of other lengths than its name says; skipped")
        return None
    return steps


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
