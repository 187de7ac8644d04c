"""Pixel envs in worker processes: the same frames and rewards as the envs in this process, worker
errors raised here with their message, and workers that always go away (close, Ctrl-C, a killed parent)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from worldmodel.envs.pixel_workers import WorkerPixelEnvs
from worldmodel.envs.pixel_factory import make_pixel_envs
from worldmodel.envs.pixels import PixelEnvConfig, PixelEnvs, make_pixel_env
from worldmodel.errors import UserError

os.environ.setdefault("MUJOCO_GL", "egl")
ROOT = Path(__file__).resolve().parents[1]


def gone(pid: int) -> bool:
    """The process has exited (a zombie waiting for a reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "State:\tZ" in state


def wait_gone(pids: list[int], seconds: float = 15.0) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if all(gone(pid) for pid in pids):
            return True
        time.sleep(0.1)
    return False


@pytest.mark.parametrize("env_id", ["dmc:cartpole-swingup", "HalfCheetah-v5"])
def test_workers_give_the_frames_and_rewards_of_single_envs(env_id):
    """Same seeds and actions: the same frames and rewards, step by step, over two episodes, with the
    first env finishing early (it holds its last frame, reward 0, done)."""
    cfg = PixelEnvConfig(id=env_id, num_envs=2, max_episode_steps=4, action_repeat=2)
    envs = make_pixel_envs(cfg, seed=7)
    singles = [make_pixel_env(cfg, seed=7 + b) for b in range(2)]
    try:
        assert isinstance(envs, WorkerPixelEnvs)
        assert (envs.action_size, envs.action_repeat, envs.max_episode_steps) == (singles[0].action_size, 2, 4)
        rng = np.random.default_rng(0)
        for _ in range(2):  # the second episode continues each env's own random stream
            frames = envs.reset()
            np.testing.assert_array_equal(frames, np.stack([env.reset() for env in singles]))
            for _ in range(4):
                actions = rng.uniform(-1, 1, (2, envs.action_size)).astype(np.float32)
                frames, rewards, done = envs.step(actions)
                for b, env in enumerate(singles):
                    frame, reward, env_done = env.step(actions[b])
                    np.testing.assert_array_equal(frames[b], frame)
                    assert rewards[b] == pytest.approx(reward, rel=1e-6, abs=1e-9) and done[b] == env_done
            assert done.all()
            held, rewards, done = envs.step(np.zeros((2, envs.action_size), np.float32))
            np.testing.assert_array_equal(held, frames)
            assert not rewards.any() and done.all()
    finally:
        envs.close()
        for env in singles:
            env.close()


def test_one_env_stays_in_this_process():
    envs = make_pixel_envs(PixelEnvConfig(num_envs=1))
    try:
        assert type(envs) is PixelEnvs and len(envs.envs) == 1
    finally:
        envs.close()


def test_a_worker_that_cannot_build_its_env_is_the_same_user_error():
    cfg = PixelEnvConfig(id="dmc:cartpole-swingup", camera="nosuchcamera", num_envs=2)
    with pytest.raises(UserError) as single:
        make_pixel_env(cfg)
    with pytest.raises(UserError) as workers:
        make_pixel_envs(cfg)
    assert str(workers.value) == str(single.value) and "nosuchcamera" in str(workers.value)


def test_an_error_while_stepping_is_raised_here_with_its_message_and_the_workers_go_on():
    envs = make_pixel_envs(PixelEnvConfig(id="dmc:cartpole-swingup", num_envs=2))
    try:
        envs.reset()
        # A 3-dim action for a 1-dim env, past the parent's shape check: dm_control refuses it in the worker.
        with pytest.raises(ValueError) as info:
            envs._step_envs(np.array([1]), np.zeros((1, 3)))
        assert "pixel env worker 1" in "".join(getattr(info.value, "__notes__", []))
        frames, rewards, done = envs.step(np.zeros((2, 1), np.float32))
        assert frames.shape == (2, 3, 64, 64) and not done.any()
    finally:
        envs.close()


def test_a_dead_worker_is_an_error_naming_it_and_close_ends_the_rest():
    envs = make_pixel_envs(PixelEnvConfig(id="dmc:cartpole-swingup", num_envs=2))
    pids = [proc.pid for proc in envs._procs]
    try:
        envs.reset()
        os.kill(pids[1], signal.SIGKILL)
        with pytest.raises(RuntimeError, match="pixel env worker 1 died"):
            envs.step(np.zeros((2, 1), np.float32))
    finally:
        envs.close()
        envs.close()  # twice is fine
    assert wait_gone(pids)


PARENT = """
import sys, numpy as np
from worldmodel.envs.pixel_factory import make_pixel_envs
from worldmodel.envs.pixels import PixelEnvConfig
envs = make_pixel_envs(PixelEnvConfig(id="dmc:cartpole-swingup", num_envs=2))
envs.reset()
print(" ".join(str(p.pid) for p in envs._procs), flush=True)
try:
    while True:
        envs.step(np.zeros((2, 1), np.float32))
        envs.reset()
except KeyboardInterrupt:
    envs.close()
    print("closed", flush=True)
"""


@pytest.mark.parametrize("how", ["ctrl-c", "sigkill"])
def test_workers_leave_with_the_parent(how):
    """Ctrl-C (SIGINT to the whole process group): the parent closes the workers, none prints a
    traceback. SIGKILL of the parent alone: the workers see their socket close and exit."""
    proc = subprocess.Popen(
        [sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
        # As in a terminal: a background job (CI, `make test &`) inherits SIGINT ignored, and Python then
        # never raises KeyboardInterrupt, so the parent would step forever.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    try:
        pids = [int(pid) for pid in proc.stdout.readline().split()]
        assert len(pids) == 2, proc.stderr.read()
        time.sleep(0.5)  # let it step a while
        if how == "ctrl-c":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    if how == "ctrl-c":
        assert proc.returncode == 0 and "closed" in out and "Traceback" not in err, err
    assert wait_gone(pids), pids
