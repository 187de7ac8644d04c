"""Playing whole episodes in the state envs with any policy ``obs (n, S) -> actions (n, A)``.

    episodes = run_episodes(envs, random_policy(spec, rng), episodes=5, rng=rng, desc="random")
    episodes.add_to(buffer)                           # every transition, none across a reset
    collected, evaluated = episodes.split(5)          # the first 5 episodes and the rest
    episodes.returns, episodes.lengths                # (n,) each

Episodes end at the env's time limit or earlier, when the env terminates (an unhealthy hopper). B envs
play B episodes at a time; an env whose episode ended sits out the rest of its batch (it is reset and
stepped with zero actions, its outputs dropped), and the policy is asked only for the envs still
playing, after ``keep(rows)`` tells it which of its previous rows those are (a planner's warm starts
follow their env).
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
    """Whole episodes back to back: obs/next_obs (n, S), actions (n, A), rewards and terminated (n,), and each
    episode's number of steps, lengths (k,); sum(lengths) = n."""

    obs: np.ndarray
    actions: np.ndarray
    next_obs: np.ndarray
    rewards: np.ndarray
    terminated: np.ndarray
    lengths: np.ndarray

    @classmethod
    def empty(cls, obs_size: int, action_size: int) -> "Episodes":
        S, A = obs_size, action_size
        zeros = np.zeros
        return cls(zeros((0, S)), zeros((0, A)), zeros((0, S)), zeros(0), zeros(0, dtype=bool), zeros(0, dtype=int))

    @property
    def starts(self) -> np.ndarray:
        """Index of each episode's first transition, (k,)."""
        return np.concatenate([[0], np.cumsum(self.lengths)[:-1]]).astype(int)

    @property
    def returns(self) -> np.ndarray:
        if len(self.lengths) == 0:
            return np.zeros(0)
        return np.add.reduceat(self.rewards.astype(np.float64), self.starts)  # (k,)

    @property
    def steps(self) -> int:
        return len(self.rewards)

    def episode(self, i: int) -> "Episodes":
        """Episode ``i`` alone."""
        start = int(self.starts[i])
        return self._slice(start, start + int(self.lengths[i]), self.lengths[i : i + 1])

    def split(self, k: int) -> tuple["Episodes", "Episodes"]:
        """The first ``k`` episodes and the rest."""
        cut = int(self.lengths[:k].sum())
        return self._slice(0, cut, self.lengths[:k]), self._slice(cut, self.steps, self.lengths[k:])

    def _slice(self, start: int, stop: int, lengths: np.ndarray) -> "Episodes":
        fields = (self.obs, self.actions, self.next_obs, self.rewards, self.terminated)
        return Episodes(*(f[start:stop] for f in fields), lengths)

    def add_to(self, buffer: TransitionBuffer) -> None:
        buffer.add(self.obs, self.actions, self.next_obs, self.rewards, self.terminated)

    @staticmethod
    def concatenate(parts: list["Episodes"]) -> "Episodes":
        fields = ("obs", "actions", "next_obs", "rewards", "terminated", "lengths")
        return Episodes(*(np.concatenate([getattr(p, name) for p in parts]) for name in fields))


def run_episodes(
    envs,
    policy: Callable[[np.ndarray], np.ndarray],
    episodes: int,
    rng: np.random.Generator,
    desc: str,
    reset: Callable[[], None] | None = None,
    keep: Callable[[np.ndarray], None] | None = None,
) -> Episodes:
    """Exactly ``episodes`` whole episodes with ``policy(obs (n, S)) -> actions (n, A)``, up to B = envs.num_envs
    at a time, each to its time limit or its termination. ``reset()`` (a policy's, e.g. forgetting a
    warm-started plan) is called before every batch's first step; ``keep(rows)`` whenever some of the envs the
    policy was last asked about are done, with the positions (in that last call) of those still playing."""
    B = envs.num_envs
    counts = [min(B, episodes - start) for start in range(0, episodes, B)]
    batches = [
        _run_batch(envs, policy, count, rng, f"{desc} {i + 1}/{len(counts)}", reset, keep)
        for i, count in enumerate(counts)
    ]
    if not batches:
        return Episodes.empty(envs.single_observation_space.shape[0], envs.single_action_space.shape[0])
    return Episodes.concatenate(batches)


def _run_batch(
    envs, policy, count: int, rng: np.random.Generator, desc: str, reset, keep
) -> Episodes:
    """One episode in each of the first ``count`` of the B envs, episode-major. Envs past ``count`` and envs
    whose episode ended step with zero actions (microseconds) and their outputs are dropped."""
    B = envs.num_envs
    obs, _ = envs.reset(seed=int(rng.integers(2**31)))  # (B, S)
    if reset is not None:  # new episodes: nothing the policy planned for the previous ones may carry over
        reset()
    playing = np.arange(count)  # envs whose episode goes on, in the order the policy sees them
    zeros = np.zeros((B, *envs.single_action_space.shape), dtype=np.float32)  # (B, A)
    steps: list[list[tuple]] = [[] for _ in range(count)]  # per env: (obs, action, next_obs, reward, terminated)
    bar = progress(desc=desc, unit="step")
    while len(playing):
        actions = zeros.copy()
        actions[playing] = np.asarray(policy(obs[playing]), dtype=np.float32)  # (n, A)
        next_obs, rewards, terminated, truncated, _ = envs.step(actions)
        for i in playing:
            steps[i].append((obs[i], actions[i], next_obs[i], rewards[i], terminated[i]))
        ended = terminated[playing] | truncated[playing]  # (n,)
        if ended.any() and keep is not None and not ended.all():
            keep(np.flatnonzero(~ended))
        playing = playing[~ended]
        # The vector env does not reset by itself: every env whose episode ended (an idle one too) restarts
        # here, and an env no longer playing sits out the batch.
        restart = terminated | truncated  # (B,)
        if restart.any():
            next_obs, _ = envs.reset(options={"reset_mask": restart})
        obs = next_obs
        bar.update(1)
    bar.close()
    return Episodes.concatenate([_stack(env_steps) for env_steps in steps])


def _stack(env_steps: list[tuple]) -> Episodes:
    obs, actions, next_obs, rewards, terminated = (np.stack(field) for field in zip(*env_steps))
    return Episodes(
        obs.astype(np.float32),
        actions.astype(np.float32),
        next_obs.astype(np.float32),
        rewards.astype(np.float32),
        terminated.astype(bool),
        np.array([len(env_steps)]),
    )


def random_policy(spec: StateEnvSpec, rng: np.random.Generator) -> Callable[[np.ndarray], np.ndarray]:
    low, high = np.asarray(spec.action_low), np.asarray(spec.action_high)
    return lambda obs: rng.uniform(low, high, size=(len(obs), spec.action_size))
