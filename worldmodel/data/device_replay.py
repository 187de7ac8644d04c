"""The episode replay's storage mirrored on the training device, so chunks are gathered there.

    chunks = DeviceReplay(replay, torch.device("cuda"))
    batch = chunks.sample(50, 50, rng)      # the chunks replay.sample(50, 50, rng) gives, as tensors on the GPU

On a GPU a training step of PlaNet's size takes milliseconds, and gathering 50 x 50 frames on the host
(30 MB) and copying them over would take as long again. Here the host draws only the slots (B, T)
(same generator, same chunks as ``EpisodeReplay.sample``) and 20 KB of indices cross; the frames
cross once, as they are collected, and stay uint8 until the model preprocesses them.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from worldmodel.data.episodes import EpisodeReplay


class DeviceReplay:
    def __init__(self, replay: EpisodeReplay, device: torch.device | str) -> None:
        self.replay = replay
        self.device = torch.device(device)
        self._mirror: dict[str, Tensor] = {}
        self._host_obs: np.ndarray | None = None  # the host array the mirror copies (a new one after growth)
        self._synced_steps = 0  # replay.total_steps at the last sync

    def sample(self, batch_size: int, chunk_length: int, generator: np.random.Generator) -> dict[str, Tensor]:
        """obs uint8 (B, T, C, H, W), action (B, T, A), reward (B, T), is_first bool (B, T), on the device."""
        self.sync()
        slots = self.replay.sample_slots(batch_size, chunk_length, generator)  # (B, T)
        slots = torch.as_tensor(slots, device=self.device)
        return {key: stored[slots] for key, stored in self._mirror.items()}

    def sync(self) -> None:
        """Copy the steps written since the last call (all of them after the storage grew or was reloaded)."""
        arrays = self.replay.arrays()
        new_steps = self.replay.total_steps - self._synced_steps
        if arrays["obs"] is not self._host_obs or not 0 <= new_steps < len(arrays["obs"]):
            self._mirror = {key: torch.as_tensor(array).to(self.device, copy=True) for key, array in arrays.items()}
        elif new_steps > 0:
            slots = (self.replay.write_head - new_steps + np.arange(new_steps)) % len(arrays["obs"])  # (n,)
            on_device = torch.as_tensor(slots, device=self.device)
            for key, array in arrays.items():
                self._mirror[key][on_device] = torch.as_tensor(array[slots]).to(self.device)
        self._host_obs = arrays["obs"]
        self._synced_steps = self.replay.total_steps
