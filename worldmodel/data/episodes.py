"""Episode replay for the pixel agent: a ring buffer of aligned steps, sampled as (B, T) chunks.

Step i holds ``obs_i`` (uint8 (C, H, W)), ``action_i`` (the action that led to obs_i; zeros on an
episode's first step), ``reward_i`` (received on arriving at obs_i; 0 on the first step) and
``is_first_i``. Episodes are stored back to back, so a chunk may span an episode boundary: the
RSSM resets its state wherever ``is_first`` is true, which makes that correct and wastes no data.

Memory is capped (``capacity_mb``): PlaNet ports are known for filling the RAM with frames. Past
the cap the oldest steps are overwritten and one message says so. The arrays grow as steps
arrive, so a large cap costs nothing until it is used.

A run keeps its replay on disk too (``keep_on_disk``): every episode added is written once, as its own
file (``worldmodel/data/episode_files.py``), so a checkpoint records only how many there are
(``disk_state``) and a resumed run reads them back, the newest that fit the cap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from worldmodel.config import check
from worldmodel.data.episode_files import EpisodeFolder
from worldmodel.errors import ConfigError, UserError

MB = 2**20


@dataclass
class ReplayConfig:
    capacity_mb: float = 2048.0
    """Memory cap for the stored steps (frames, actions, rewards), in MiB; the oldest steps go first past it."""
    capacity_steps: int | None = None
    """Optional cap in steps; the smaller of the two caps applies."""

    def __post_init__(self) -> None:
        check(self.capacity_mb > 0, f"replay.capacity_mb must be > 0, got {self.capacity_mb}")
        check(
            self.capacity_steps is None or self.capacity_steps >= 1,
            f"replay.capacity_steps must be >= 1 or null, got {self.capacity_steps}",
        )


def bytes_per_step(obs_shape: tuple[int, ...], action_size: int) -> int:
    """uint8 frame + float32 action + float32 reward + bool is_first."""
    return math.prod(obs_shape) + 4 * action_size + 4 + 1


class EpisodeReplay:
    """Ring buffer of aligned steps; ``sample`` returns numpy chunks that never cross the write head.

    >>> replay = EpisodeReplay(ReplayConfig(capacity_mb=512), obs_shape=(3, 64, 64), action_size=1)
    >>> replay.check_fits(chunk_length=50)
    >>> replay.add(frame, np.zeros(1), 0.0, is_first=True)   # then add(frame, action, reward, False) ...
    >>> batch = replay.sample(50, 50, np.random.default_rng(0))  # obs (50, 50, 3, 64, 64) uint8 ...
    """

    def __init__(self, cfg: ReplayConfig, obs_shape: tuple[int, ...] = (3, 64, 64), action_size: int = 1) -> None:
        self.cfg = cfg
        self.obs_shape = tuple(int(x) for x in obs_shape)
        self.action_size = int(action_size)
        self.step_bytes = bytes_per_step(self.obs_shape, self.action_size)
        self.capacity = int(cfg.capacity_mb * MB) // self.step_bytes
        if cfg.capacity_steps is not None:
            self.capacity = min(self.capacity, cfg.capacity_steps)
        self.folder: EpisodeFolder | None = None  # where added episodes are written (``keep_on_disk``)
        self.episodes_on_disk = 0
        self._clear()

    def _clear(self) -> None:
        self._allocated = 0
        self._obs = np.zeros((0, *self.obs_shape), np.uint8)  # (capacity, C, H, W)
        self._action = np.zeros((0, self.action_size), np.float32)  # (capacity, A)
        self._reward = np.zeros((0,), np.float32)  # (capacity,)
        self._is_first = np.zeros((0,), bool)  # (capacity,)
        self._next = 0  # slot the next step is written to (the write head)
        self._size = 0
        self._firsts = 0  # is_first steps currently stored
        self.total_steps = 0  # steps ever added, evicted ones included
        self.warned_full = False

    # ---- size and checks ------------------------------------------------------------------

    def __len__(self) -> int:
        return self._size

    @property
    def episodes(self) -> int:
        """Episodes with at least one step stored (a partly evicted oldest one counts)."""
        partial = self._size > 0 and not self._is_first[self._oldest]
        return self._firsts + int(partial)

    @property
    def write_head(self) -> int:
        """The slot the next step goes to; the newest step is in the slot before it."""
        return self._next

    @property
    def _oldest(self) -> int:
        return (self._next - self._size) % max(self.capacity, 1)

    def check_fits(self, chunk_length: int) -> None:
        """Raise a one-line ``ConfigError`` if the cap cannot hold one chunk of ``chunk_length`` steps."""
        if self.capacity >= chunk_length:
            return
        if self.cfg.capacity_steps is not None and self.cfg.capacity_steps < chunk_length:
            raise ConfigError(
                f"replay.capacity_steps={self.cfg.capacity_steps} is smaller than one chunk of {chunk_length} steps; "
                f"set it to at least {chunk_length} (or null)"
            )
        needed_mb = chunk_length * self.step_bytes / MB
        raise ConfigError(
            f"replay.capacity_mb={self.cfg.capacity_mb:g} holds {self.capacity} steps of {self.step_bytes} bytes, "
            f"fewer than one chunk of {chunk_length} steps; set it to at least {needed_mb:.2f}"
        )

    # ---- writing --------------------------------------------------------------------------

    def add(self, obs: np.ndarray, action: np.ndarray, reward: float, is_first: bool) -> None:
        """Append one step: obs uint8 (C, H, W), action (A,), reward, is_first (memory only: the disk takes
        whole episodes, from ``add_episode``)."""
        if self.folder is not None:
            raise RuntimeError("a replay kept on disk takes whole episodes: use add_episode")
        self._write(
            np.asarray(obs)[None],
            np.asarray(action, np.float32).reshape(1, self.action_size),
            np.asarray([reward], np.float32),
            np.asarray([is_first], bool),
        )

    def add_episode(
        self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, is_first: np.ndarray | None = None
    ) -> None:
        """Append T steps at once: obs uint8 (T, C, H, W), action (T, A), reward (T,), is_first (T,)
        (default: only the first step is an episode start); kept on disk, also its own file."""
        T = len(obs)
        if is_first is None:
            is_first = np.zeros(T, bool)
            is_first[:1] = True
        steps = {
            "obs": np.asarray(obs),
            "action": np.asarray(action, np.float32).reshape(T, self.action_size),
            "reward": np.asarray(reward, np.float32).reshape(T),
            "is_first": np.asarray(is_first, bool).reshape(T),
        }
        self._write(**steps)
        if self.folder is not None:
            self.folder.write(self.episodes_on_disk, steps)
            self.episodes_on_disk += 1

    def _write(self, obs: np.ndarray, action: np.ndarray, reward: np.ndarray, is_first: np.ndarray) -> None:
        if obs.shape[1:] != self.obs_shape or obs.dtype != np.uint8:
            raise UserError(f"replay stores uint8 frames of shape {self.obs_shape}; got {obs.dtype} {obs.shape[1:]}")
        if self.capacity < 1:
            raise ConfigError(f"replay.capacity_mb={self.cfg.capacity_mb:g} cannot hold a single step")
        if len(obs) > self.capacity:  # only the newest steps can survive anyway
            obs, action, reward, is_first = (x[-self.capacity :] for x in (obs, action, reward, is_first))
        n = len(obs)
        self._grow_to(min(self.capacity, self._size + n))
        overwritten = self._size + n - self.capacity
        if overwritten > 0:
            self._announce_full()
            evicted = (self._oldest + np.arange(overwritten)) % self.capacity
            self._firsts -= int(self._is_first[evicted].sum())
        slots = (self._next + np.arange(n)) % self.capacity
        self._obs[slots] = obs
        self._action[slots] = action
        self._reward[slots] = reward
        self._is_first[slots] = is_first
        self._firsts += int(is_first.sum())
        self._next = (self._next + n) % self.capacity
        self._size = min(self._size + n, self.capacity)
        self.total_steps += n

    def _grow_to(self, size: int) -> None:
        """Make room for ``size`` steps, doubling the arrays (up to the cap) so copies stay amortised O(1).

        Growth only happens before the first wrap-around, so the stored steps are slots [0, size)."""
        if size <= self._allocated:
            return
        new = min(self.capacity, max(size, 2 * self._allocated, 1024))
        for name in ("_obs", "_action", "_reward", "_is_first"):
            old = getattr(self, name)
            grown = np.zeros((new, *old.shape[1:]), old.dtype)
            grown[: self._size] = old[: self._size]
            setattr(self, name, grown)
        self._allocated = new

    def _announce_full(self) -> None:
        if self.warned_full:
            return
        self.warned_full = True
        print(
            f"replay: reached its cap of {self.capacity} steps ({self.capacity * self.step_bytes / MB:.0f} MiB, "
            f"replay.capacity_mb={self.cfg.capacity_mb:g}); the oldest steps are dropped from now on",
            flush=True,
        )

    # ---- reading --------------------------------------------------------------------------

    def sample(self, batch_size: int, chunk_length: int, generator: np.random.Generator) -> dict[str, np.ndarray]:
        """B chunks of T consecutive steps, uniformly over start steps, never crossing the write head.

        Returns obs uint8 (B, T, C, H, W), action float32 (B, T, A), reward float32 (B, T),
        is_first bool (B, T).
        """
        idx = self.sample_slots(batch_size, chunk_length, generator)  # (B, T)
        return {key: array[idx] for key, array in self.arrays().items()}

    def sample_slots(self, batch_size: int, chunk_length: int, generator: np.random.Generator) -> np.ndarray:
        """The storage slots (B, T) of B chunks as ``sample`` draws them (same generator, same chunks);
        index ``arrays()`` with them, here or in a copy on a GPU (``DeviceReplay``)."""
        if self._size < chunk_length:
            raise UserError(
                f"replay holds {self._size} steps, fewer than one chunk of {chunk_length}; "
                "collect more (seed) episodes before training or shorten the chunk length"
            )
        # Offsets count from the oldest step, so a chunk ends at the newest step at the latest.
        offsets = generator.integers(0, self._size - chunk_length + 1, size=batch_size)  # (B,)
        return (self._oldest + offsets[:, None] + np.arange(chunk_length)[None]) % self.capacity  # (B, T)

    def arrays(self) -> dict[str, np.ndarray]:
        """The storage, by slot: obs uint8 (N, C, H, W), action (N, A), reward (N,), is_first (N,); N slots
        allocated so far (storage grows as steps come, up to ``capacity``)."""
        return {"obs": self._obs, "action": self._action, "reward": self._reward, "is_first": self._is_first}

    def _ordered(self) -> np.ndarray:
        """Slots of the stored steps, oldest first."""
        return (self._oldest + np.arange(self._size)) % max(self.capacity, 1)

    # ---- checkpoints ----------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """Stored steps (oldest first) and counters, as numpy arrays and ints."""
        if self._oldest + self._size <= self._allocated:  # not wrapped: views, no copy of the frames
            part = slice(self._oldest, self._oldest + self._size)
        else:
            part = self._ordered()
        return {
            "obs": self._obs[part],
            "action": self._action[part],
            "reward": self._reward[part],
            "is_first": self._is_first[part],
            "total_steps": self.total_steps,
            "warned_full": self.warned_full,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Replace the contents with a ``state_dict()``; past this cap only its newest steps are kept."""
        obs = np.asarray(state["obs"])
        if obs.shape[1:] != self.obs_shape or np.asarray(state["action"]).shape[1:] != (self.action_size,):
            raise UserError(
                f"replay checkpoint holds frames {obs.shape[1:]} and actions {np.asarray(state['action']).shape[1:]}, "
                f"but this run uses frames {self.obs_shape} and actions ({self.action_size},)"
            )
        self._clear()
        self.warned_full = bool(state["warned_full"])
        if len(obs):
            self._write(obs, np.asarray(state["action"]), np.asarray(state["reward"]), np.asarray(state["is_first"]))
        self.total_steps = int(state["total_steps"])

    # ---- on disk --------------------------------------------------------------------------

    def keep_on_disk(self, folder: str | Path, state: dict[str, Any] | None = None) -> None:
        """From now on write every episode added to ``folder``. ``state`` (a checkpoint's ``disk_state()``):
        first read back the episodes it counts, the newest that fit the cap, and delete those written
        after it (the resumed run collects them again). Steps already in memory (a run from before the
        replay lived on disk) are written out as episodes."""
        self.folder = EpisodeFolder(folder)
        if state is None:
            self.folder.forget_from(0)
            for steps in self._stored_episodes():
                self.folder.write(self.episodes_on_disk, steps)
                self.episodes_on_disk += 1
            return
        self._clear()
        self.warned_full = bool(state["warned_full"])  # the cap's message is said once per run, not per resume
        self.episodes_on_disk = int(state["episodes"])
        self.folder.forget_from(self.episodes_on_disk)
        for steps in self.folder.read(self.episodes_on_disk, self.capacity):
            self._write(**steps)
        self.total_steps = int(state["total_steps"])

    def disk_state(self) -> dict[str, Any]:
        """What a checkpoint keeps of a replay on disk: how many episodes it holds, and its counters."""
        return {"episodes": self.episodes_on_disk, "total_steps": self.total_steps, "warned_full": self.warned_full}

    def _stored_episodes(self) -> list[dict[str, np.ndarray]]:
        """The stored steps cut at episode starts, oldest first (the oldest may have lost its start to the cap)."""
        ordered = {key: array[self._ordered()] for key, array in self.arrays().items()}
        starts = [0, *np.flatnonzero(ordered["is_first"][1:]) + 1] if self._size else []
        ends = [*starts[1:], self._size]
        return [{key: array[a:b] for key, array in ordered.items()} for a, b in zip(starts, ends)]
