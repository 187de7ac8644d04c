"""A flat buffer of transitions (obs, action, next_obs, reward, terminated) for the state agent.

``terminated`` marks the transitions into a terminal state (an unhealthy hopper), never one cut by the time
limit; each transition is whole, so no transition ever spans a reset.

Stored as float32 torch tensors on the training device and grown by doubling, so sampling a
batch for every ensemble member is one ``randint`` and one gather, with no host round trip.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

FIELDS = ("obs", "actions", "next_obs", "rewards", "terminated")


class TransitionBuffer:
    """``add`` (n, ...) transitions; ``sample(E, B)`` gives each member its own (E, B, ...) batch.

    >>> buffer = TransitionBuffer(obs_size=18, action_size=6, device=device)
    >>> buffer.add(obs, actions, next_obs, rewards, terminated)  # (n, S), (n, A), (n, S), (n,), (n,)
    >>> batch = buffer.sample(5, 512, generator)               # batch["obs"]: (5, 512, S)
    """

    def __init__(self, obs_size: int, action_size: int, device: torch.device | str = "cpu", capacity: int = 1024) -> None:
        self.obs_size = obs_size
        self.action_size = action_size
        self.device = torch.device(device)
        self.size = 0
        self._data = self._empty(capacity)

    def _empty(self, capacity: int) -> dict[str, Tensor]:
        shapes = {
            "obs": (capacity, self.obs_size),
            "actions": (capacity, self.action_size),
            "next_obs": (capacity, self.obs_size),
            "rewards": (capacity,),
            "terminated": (capacity,),
        }
        return {key: torch.zeros(shape, dtype=torch.float32, device=self.device) for key, shape in shapes.items()}

    def __len__(self) -> int:
        return self.size

    def add(self, obs: Any, actions: Any, next_obs: Any, rewards: Any, terminated: Any = None) -> None:
        """Append n transitions: (n, S), (n, A), (n, S), (n,), (n,) (terminated: bool or 0/1; None: none
        terminated), numpy or torch."""
        if terminated is None:
            terminated = torch.zeros(len(rewards))
        values = (obs, actions, next_obs, rewards, terminated)
        new = {key: torch.as_tensor(value) for key, value in zip(FIELDS, values)}
        n = new["obs"].shape[0]
        S, A = self.obs_size, self.action_size
        expected = {"obs": (n, S), "actions": (n, A), "next_obs": (n, S), "rewards": (n,), "terminated": (n,)}
        shapes = {key: tuple(value.shape) for key, value in new.items()}
        assert shapes == expected, (expected, shapes)
        self._reserve(self.size + n)
        for key, value in new.items():
            self._data[key][self.size : self.size + n] = value.to(self._data[key])
        self.size += n

    def _reserve(self, needed: int) -> None:
        capacity = self._data["obs"].shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        grown = self._empty(capacity)
        for key in FIELDS:
            grown[key][: self.size] = self._data[key][: self.size]
        self._data = grown

    def all(self) -> dict[str, Tensor]:
        """Every stored transition, (n, ...) views."""
        return {key: value[: self.size] for key, value in self._data.items()}

    def sample(self, ensemble_size: int, batch_size: int, generator: torch.Generator | None = None) -> dict[str, Tensor]:
        """Uniform batches with replacement, independent per member: each field (E, B, ...)."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty TransitionBuffer")
        index = torch.randint(self.size, (ensemble_size, batch_size), device=self.device, generator=generator)  # (E, B)
        return {key: value[index] for key, value in self._data.items()}

    def state_dict(self) -> dict[str, Any]:
        return {key: value.cpu().clone() for key, value in self.all().items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.size = 0
        self._data = self._empty(max(1024, state["obs"].shape[0]))
        # Checkpoints from before termination was stored hold no "terminated": none of their envs terminated.
        self.add(state["obs"], state["actions"], state["next_obs"], state["rewards"], state.get("terminated"))
