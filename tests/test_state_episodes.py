"""Collecting state episodes that end at different times: returns, lengths, no transition across a reset,
and the policy asked only about the envs still playing."""

from __future__ import annotations

import gymnasium
import numpy as np
from gymnasium.spaces import Box
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import TimeLimit

from worldmodel.data.transitions import TransitionBuffer
from worldmodel.envs.state_episodes import Episodes, run_episodes

TIME_LIMIT = 5


class Countdown(gymnasium.Env):
    """obs = (t, limit, episode number); reward t + 1 at step t; terminates when t + 1 reaches ``limit``
    (never when limit > TIME_LIMIT: the time limit truncates)."""

    observation_space = Box(-np.inf, np.inf, (3,), np.float64)
    action_space = Box(-1.0, 1.0, (1,), np.float32)

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.t = 0
        self.episode = -1

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t, self.episode = 0, self.episode + 1
        return self._obs(), {}

    def step(self, action):
        reward = float(self.t + 1)
        self.t += 1
        return self._obs(), reward, self.t == self.limit, False, {}

    def _obs(self) -> np.ndarray:
        return np.array([self.t, self.limit, self.episode], dtype=np.float64)


def countdown_envs(*limits: int) -> SyncVectorEnv:
    fns = [lambda limit=limit: TimeLimit(Countdown(limit), TIME_LIMIT) for limit in limits]
    return SyncVectorEnv(fns, autoreset_mode=AutoresetMode.DISABLED)


class RecordingPolicy:
    def __init__(self) -> None:
        self.batch_sizes: list[int] = []
        self.kept: list[list[int]] = []
        self.resets = 0

    def act(self, obs: np.ndarray) -> np.ndarray:
        self.batch_sizes.append(len(obs))
        return obs[:, 1:2] / 10  # (n, 1): the env's limit, so the stored action says whose step it was

    def keep(self, rows: np.ndarray) -> None:
        self.kept.append(rows.tolist())

    def reset(self) -> None:
        self.resets += 1


def test_an_env_that_terminates_early_ends_only_its_episode() -> None:
    envs = countdown_envs(3, 9)  # env 0 terminates after 3 steps, env 1 is truncated at TIME_LIMIT
    policy = RecordingPolicy()
    rng = np.random.default_rng(0)
    episodes = run_episodes(envs, policy.act, 3, rng, "test", reset=policy.reset, keep=policy.keep)

    # Batch 1: both envs (3 and 5 steps); batch 2: env 0 alone (3 steps).
    np.testing.assert_array_equal(episodes.lengths, [3, 5, 3])
    np.testing.assert_allclose(episodes.returns, [1 + 2 + 3, 1 + 2 + 3 + 4 + 5, 6])
    np.testing.assert_array_equal(episodes.terminated, [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1])
    assert policy.batch_sizes == [2, 2, 2, 1, 1, 1, 1, 1]  # env 0's rows leave after its 3rd step
    assert policy.kept == [[1]]  # env 1, position 1 in the last call, plays on
    assert policy.resets == 2

    # Within an episode each transition starts where the last ended; no transition spans a reset.
    for i in range(3):
        episode = episodes.episode(i)
        np.testing.assert_array_equal(episode.obs[1:], episode.next_obs[:-1])
        np.testing.assert_array_equal(episode.obs[:, 0], np.arange(episode.steps))  # starts at t = 0
        assert len(np.unique(episode.obs[:, 2])) == 1  # one env episode throughout
    np.testing.assert_allclose(episodes.actions[:, 0], [0.3] * 3 + [0.9] * 5 + [0.3] * 3, rtol=1e-6)
    envs.close()


def test_episodes_split_and_buffer_keep_terminations() -> None:
    envs = countdown_envs(2, 4)
    episodes = run_episodes(envs, RecordingPolicy().act, 4, np.random.default_rng(1), "test")
    first, rest = episodes.split(1)
    np.testing.assert_array_equal(first.lengths, [2])
    np.testing.assert_array_equal(rest.lengths, [4, 2, 4])
    assert first.steps + rest.steps == episodes.steps == 12
    buffer = TransitionBuffer(obs_size=3, action_size=1)
    episodes.add_to(buffer)
    np.testing.assert_array_equal(buffer.all()["terminated"].numpy(), episodes.terminated.astype(np.float32))
    assert buffer.all()["terminated"].sum() == 4  # every episode ended by termination (both limits <= 5)
    envs.close()


def test_buffers_saved_before_terminations_existed_load_as_never_terminated() -> None:
    buffer = TransitionBuffer(obs_size=3, action_size=1)
    old = {"obs": np.ones((4, 3)), "actions": np.zeros((4, 1)), "next_obs": np.ones((4, 3)), "rewards": np.arange(4.0)}
    buffer.load_state_dict({key: np.asarray(value, dtype=np.float32) for key, value in old.items()})
    assert len(buffer) == 4 and buffer.all()["terminated"].sum() == 0
    np.testing.assert_array_equal(buffer.all()["rewards"].numpy(), [0, 1, 2, 3])


def test_no_episodes_is_empty() -> None:
    envs = countdown_envs(2)
    empty = run_episodes(envs, RecordingPolicy().act, 0, np.random.default_rng(0), "test")
    assert empty.steps == 0 and len(empty.returns) == 0
    assert isinstance(Episodes.concatenate([empty, empty]), Episodes)
    envs.close()
