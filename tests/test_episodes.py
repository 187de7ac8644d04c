"""EpisodeReplay: chunk shapes and dtypes, episode boundaries, the memory cap, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from worldmodel.data.device_replay import DeviceReplay
from worldmodel.data.episodes import EpisodeReplay, ReplayConfig, bytes_per_step
from worldmodel.errors import ConfigError, UserError

OBS_SHAPE = (3, 8, 8)  # small frames keep the tests fast; the replay does not care about the size
A = 2


def episode(length: int, start: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Frames filled with their global step index (mod 256), actions/rewards = index, so any chunk can be
    checked for order; the first step follows the convention (zero action, zero reward)."""
    steps = np.arange(start, start + length)
    obs = np.broadcast_to((steps % 256).astype(np.uint8)[:, None, None, None], (length, *OBS_SHAPE)).copy()
    action = np.repeat(steps[:, None].astype(np.float32), A, axis=1)
    reward = steps.astype(np.float32)
    action[0] = 0
    reward[0] = 0
    return obs, action, reward


def fill(replay: EpisodeReplay, lengths: list[int], one_step_at_a_time: bool = False, start: int = 0) -> None:
    for length in lengths:
        obs, action, reward = episode(length, start)
        if one_step_at_a_time:
            for i in range(length):
                replay.add(obs[i], action[i], float(reward[i]), is_first=i == 0)
        else:
            replay.add_episode(obs, action, reward)
        start += length


def steps_cap(steps: int) -> ReplayConfig:
    return ReplayConfig(capacity_mb=steps * bytes_per_step(OBS_SHAPE, A) / 2**20)


@pytest.mark.parametrize("B,T", [(1, 1), (4, 7), (16, 10)])
def test_sample_shapes_and_dtypes(B: int, T: int) -> None:
    replay = EpisodeReplay(ReplayConfig(), obs_shape=OBS_SHAPE, action_size=A)
    fill(replay, [12, 9], one_step_at_a_time=True)
    assert len(replay) == 21 and replay.episodes == 2
    batch = replay.sample(B, T, np.random.default_rng(0))
    assert batch["obs"].shape == (B, T, *OBS_SHAPE) and batch["obs"].dtype == np.uint8
    assert batch["action"].shape == (B, T, A) and batch["action"].dtype == np.float32
    assert batch["reward"].shape == (B, T) and batch["reward"].dtype == np.float32
    assert batch["is_first"].shape == (B, T) and batch["is_first"].dtype == bool


def test_chunks_are_consecutive_and_mark_episode_starts() -> None:
    lengths = [5, 3, 6, 4]
    replay = EpisodeReplay(ReplayConfig(), obs_shape=OBS_SHAPE, action_size=A)
    fill(replay, lengths)
    starts = set(np.cumsum([0] + lengths[:-1]).tolist())  # global indices of first steps: 0, 5, 8, 14
    batch = replay.sample(64, 6, np.random.default_rng(1))
    index = batch["obs"][:, :, 0, 0, 0].astype(int)  # (B, T) global step index
    assert (np.diff(index, axis=1) == 1).all()
    expected_first = np.isin(index, list(starts))
    np.testing.assert_array_equal(batch["is_first"], expected_first)
    assert expected_first[:, 1:].any(), "some chunks should span an episode boundary"
    # Aligned steps: zero action and reward exactly where an episode starts.
    np.testing.assert_array_equal(batch["reward"] == 0, expected_first)
    np.testing.assert_array_equal((batch["action"] == 0).all(-1), expected_first)


def test_add_and_add_episode_store_the_same() -> None:
    a = EpisodeReplay(ReplayConfig(), obs_shape=OBS_SHAPE, action_size=A)
    b = EpisodeReplay(ReplayConfig(), obs_shape=OBS_SHAPE, action_size=A)
    fill(a, [4, 6], one_step_at_a_time=True)
    fill(b, [4, 6])
    for key, value in a.state_dict().items():
        np.testing.assert_array_equal(value, b.state_dict()[key])


def test_ring_buffer_drops_the_oldest_steps_once_announced(capsys: pytest.CaptureFixture[str]) -> None:
    replay = EpisodeReplay(steps_cap(20), obs_shape=OBS_SHAPE, action_size=A)
    assert replay.capacity == 20
    fill(replay, [8, 8])
    assert capsys.readouterr().out == ""
    fill(replay, [8, 8, 8, 8, 8], one_step_at_a_time=True, start=16)  # global steps 0..55, now steps 36..55 kept
    out = capsys.readouterr().out
    assert out.count("replay: reached its cap") == 1 and "capacity_mb" in out
    assert len(replay) == 20 and replay.total_steps == 56
    assert replay.episodes == 3  # 36..39 is the end of a partly evicted one, then two whole ones
    batch = replay.sample(256, 5, np.random.default_rng(2))
    index = batch["obs"][:, :, 0, 0, 0].astype(int)
    assert index.min() >= 36 and index.max() <= 55
    # Never across the write head: every chunk is consecutive in time, none mixes newest with oldest.
    assert (np.diff(index, axis=1) == 1).all()
    assert index[:, 0].min() == 36 and index[:, -1].max() == 55  # both ends of the buffer are reachable


def test_cap_too_small_for_one_chunk_is_a_clear_error() -> None:
    replay = EpisodeReplay(steps_cap(10), obs_shape=OBS_SHAPE, action_size=A)
    replay.check_fits(10)
    with pytest.raises(ConfigError, match=r"capacity_mb=.* fewer than one chunk of 50 steps; set it to at least"):
        replay.check_fits(50)
    with pytest.raises(ConfigError, match="replay.capacity_steps=5"):
        EpisodeReplay(ReplayConfig(capacity_steps=5), obs_shape=OBS_SHAPE, action_size=A).check_fits(8)
    with pytest.raises(ConfigError, match="capacity_mb must be > 0"):
        ReplayConfig(capacity_mb=0)


def test_sampling_more_than_stored_is_a_user_error() -> None:
    replay = EpisodeReplay(ReplayConfig(), obs_shape=OBS_SHAPE, action_size=A)
    fill(replay, [3])
    with pytest.raises(UserError, match="replay holds 3 steps, fewer than one chunk of 4"):
        replay.sample(2, 4, np.random.default_rng(0))
    with pytest.raises(UserError, match="uint8 frames of shape"):
        replay.add(np.zeros((3, 64, 64), np.uint8), np.zeros(A), 0.0, True)


@pytest.mark.parametrize("lengths", [[7, 5], [8, 8, 8, 8]])  # not wrapped, wrapped
def test_state_dict_round_trip(lengths: list[int]) -> None:
    replay = EpisodeReplay(steps_cap(20), obs_shape=OBS_SHAPE, action_size=A)
    fill(replay, lengths)
    state = replay.state_dict()
    restored = EpisodeReplay(steps_cap(20), obs_shape=OBS_SHAPE, action_size=A)
    restored.load_state_dict(state)
    assert len(restored) == len(replay) and restored.episodes == replay.episodes
    assert restored.total_steps == replay.total_steps and restored.warned_full == replay.warned_full
    original_batch = replay.sample(8, 4, np.random.default_rng(3))
    restored_batch = restored.sample(8, 4, np.random.default_rng(3))
    for key, value in original_batch.items():
        np.testing.assert_array_equal(value, restored_batch[key])
    # Adding after a restore continues in the same order.
    obs, action, reward = episode(3, sum(lengths))
    replay.add_episode(obs, action, reward)
    restored.add_episode(obs, action, reward)
    for key, value in replay.state_dict().items():
        np.testing.assert_array_equal(value, restored.state_dict()[key])


def assert_same_chunks(replay: EpisodeReplay, mirror: DeviceReplay, seed: int) -> None:
    on_host = replay.sample(6, 4, np.random.default_rng(seed))
    mirrored = mirror.sample(6, 4, np.random.default_rng(seed))
    assert set(mirrored) == set(on_host)
    for key, value in on_host.items():
        assert mirrored[key].dtype == torch.as_tensor(value).dtype, key
        np.testing.assert_array_equal(mirrored[key].numpy(), value, err_msg=key)


def test_the_device_mirror_gives_the_chunks_the_replay_gives() -> None:
    """DeviceReplay (the GPU path; here on the CPU device) follows growth, wrap-around and reloads."""
    replay = EpisodeReplay(steps_cap(2000), OBS_SHAPE, A)
    mirror = DeviceReplay(replay, "cpu")
    fill(replay, [30, 25])
    assert_same_chunks(replay, mirror, seed=0)
    fill(replay, [40], one_step_at_a_time=True, start=100)  # a few new steps: copied one by one
    assert_same_chunks(replay, mirror, seed=1)
    fill(replay, [900, 700, 600], start=200)  # grows, then wraps around past the cap
    assert replay.total_steps > replay.capacity
    assert_same_chunks(replay, mirror, seed=2)
    fill(replay, [50], start=3000)  # after the wrap: only the new slots
    assert_same_chunks(replay, mirror, seed=3)
    reloaded = EpisodeReplay(steps_cap(2000), OBS_SHAPE, A)
    fill(reloaded, [20])
    reloaded_mirror = DeviceReplay(reloaded, "cpu")
    assert_same_chunks(reloaded, reloaded_mirror, seed=4)
    reloaded.load_state_dict(replay.state_dict())
    assert_same_chunks(reloaded, reloaded_mirror, seed=5)
