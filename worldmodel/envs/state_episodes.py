"""Playing whole episodes in the state envs with any policy ``obs (n, S) -> actions (n, A)``.

    episodes = run_episodes(envs, random_policy(spec, rng), episodes=5, length=1000, rng=rng, desc="random")
    episodes.add_to(buffer)                           # every transition, episode-major
    collected, evaluated = episodes.split(5)          # the first 5 episodes and the rest
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from worldmodel.data.transitions import TransitionBuffer
from worldmodel.envs.state import StateEnvSpec
from worldmodel.logging.progress import progress


@dataclass
class Episodes:
    """Whole episodes, episode-major: obs/next_obs (n, T, S), actions (n, T, A), rewards (n, T)."""

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    rewards: np.ndarray

    @property
    def returns(self) -> np.ndarray:
        return self.rewards.sum(axis=1)  # (n,)

    @property
    def steps(self) -> int:
        return self.rewards.size

    def split(self, n: int) -> tuple["Episodes", "Episodes"]:
        """The first ``n`` episodes and the rest."""
        fields = (self.obs, self.actions, self.next_obs, self.rewards)
        return Episodes(*(f[:n] for f in fields)), Episodes(*(f[n:] for f in fields))

    def add_to(self, buffer: TransitionBuffer) -> None:
        S, A = self.obs.shape[-1], self.actions.shape[-1]
        buffer.add(
            self.obs.reshape(-1, S), self.actions.reshape(-1, A), self.next_obs.reshape(-1, S), self.rewards.reshape(-1)
        )


def run_episodes(
    envs,
    policy: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    length: int,
    rng: np.random.Generator,
    desc: str,
    reset: Callable[[], None] | None = None,
) -> Episodes:
    """Exactly ``episodes`` episodes of ``length`` steps with ``policy(obs (n, S)) -> actions (n, A)``,
    up to B = envs.num_envs at a time; a last, smaller batch asks the policy only for the envs it uses.
    ``reset()`` (a policy's, e.g. forgetting a warm-started plan) is called before every batch's first step."""
    B = envs.num_envs
    counts = [min(B, episodes - start) for start in range(0, episodes, B)]
    batches = [
        _run_batch(envs, policy, count, length, rng, f"{desc} {i + 1}/{len(counts)}", reset)
        for i, count in enumerate(counts)
    ]
    return Episodes(*(np.concatenate(parts) for parts in zip(*batches)))


def _run_batch(
    envs, policy, count: int, T: int, rng: np.random.Generator, desc: str, reset: Callable[[], None] | None
) -> tuple[np.ndarray, ...]:
    """One episode in each of the first ``count`` of the B envs -> obs, actions, next_obs (count, T, ...),
    rewards (count, T). The other envs step with zero actions (microseconds) and are dropped."""
    obs, _ = envs.reset(seed=int(rng.integers(2**31)))  # (B, S)
    if reset is not None:  # new episodes: nothing the policy planned for the previous ones may carry over
        reset()
    idle = np.zeros((envs.num_envs - count, *envs.single_action_space.shape), dtype=np.float32)  # (B - count, A)
    steps: list[tuple[np.ndarray, ...]] = []
    for _ in progress(range(T), desc=desc, unit="step"):
        actions = np.asarray(policy(obs[:count]), dtype=np.float32)  # (count, A)
        next_obs, rewards, terminated, _, _ = envs.step(np.concatenate([actions, idle]) if len(idle) else actions)
        # Both cheetahs never terminate; the loop's fixed length is the time limit.
        assert not terminated.any(), "a supported state env terminated early; run_episodes assumes fixed-length episodes"
        steps.append((obs[:count], actions, next_obs[:count], rewards[:count]))
        obs = next_obs
    return tuple(np.stack(field_steps, axis=1).astype(np.float32) for field_steps in zip(*steps))  # (count, T, ...)


def random_policy(spec: StateEnvSpec, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    return lambda obs: rng.uniform(spec.action_low, spec.action_high, size=(len(obs), spec.action_size))
