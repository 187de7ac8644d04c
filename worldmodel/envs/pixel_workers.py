"""Pixel envs in worker processes: one process per env, each with its own physics and its own
``mujoco.Renderer``, so the B envs of a batch step and render at the same time instead of one after
another. ``pixel_factory.make_pixel_envs`` builds this for ``num_envs > 1``; the interface is ``PixelEnvs``'s.

    envs = WorkerPixelEnvs(PixelEnvConfig(id="dmc:cartpole-swingup", num_envs=8), seed=0)
    obs = envs.reset()                                   # (B, C, H, W) uint8, env b seeded seed + b
    obs, reward, done = envs.step(actions)               # actions (B, A): one message to each worker
    envs.close()                                         # every worker exits (or is killed)

Protocol, one socket pair per worker (``multiprocessing.connection`` framing): the parent first sends
``(cfg, seed)``, then ``(command, argument)`` with command ``reset``, ``step`` or ``close``; the worker
answers ``("ok", result)`` or ``("error", exception, traceback text)``.

A worker is a fresh interpreter (``python -c``, the parent's ``sys.path``) that imports only numpy,
MuJoCo and the env code: nothing of the parent's torch threads, CUDA context or EGL state, and unlike
``multiprocessing``'s spawn it does not re-run the parent's main script, so callers need no
``if __name__ == "__main__"`` guard. Workers ignore Ctrl-C (the parent handles it and closes them) and
exit when the parent's end of the socket closes, so a killed parent leaves none behind.
"""

from __future__ import annotations

import os
import pickle
import signal
import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from worldmodel.envs.pixels import PixelEnv, PixelEnvConfig, PixelEnvs, make_pixel_env, unzip_steps

CLOSE_TIMEOUT_S = 5.0  # a worker that has not exited by then is killed
# Ctrl-C reaches the whole process group: the worker ignores it from its first line on; the parent decides.
WORKER_CODE = (
    "import signal; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "import sys; from worldmodel.envs.pixel_workers import serve; serve(int(sys.argv[1]))"
)


def serve(fd: int) -> None:
    """A worker's life, on the socket ``fd``: receive ``(cfg, seed)``, build the env, answer
    ``(action_size, action_repeat, max_episode_steps)``, then serve ``reset`` / ``step`` until ``close``
    or until the parent is gone."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    conn = Connection(fd)
    env: PixelEnv | None = None
    try:
        cfg, seed = conn.recv()
        try:
            env = make_pixel_env(cfg, seed)
        except Exception as err:  # noqa: BLE001 - every failure goes back to the parent, message intact
            conn.send(error_reply(err))
            return
        conn.send(("ok", (env.action_size, env.action_repeat, env.max_episode_steps)))
        while True:
            command, argument = conn.recv()
            if command == "close":
                return
            try:
                result = env.reset() if command == "reset" else env.step(argument)
            except Exception as err:  # noqa: BLE001
                conn.send(error_reply(err))
                continue
            conn.send(("ok", result))
    except (EOFError, OSError):
        pass  # the parent closed its end or died: nothing left to serve
    finally:
        if env is not None:
            env.close()
        conn.close()


def error_reply(err: BaseException) -> tuple[str, BaseException, str]:
    """``("error", exception, traceback text)``; an exception that cannot be pickled travels as a RuntimeError."""
    text = traceback.format_exc()
    try:
        pickle.dumps(err)
    except Exception:  # noqa: BLE001
        err = RuntimeError(f"{type(err).__name__}: {err}")
    return "error", err, text


class WorkerPixelEnvs(PixelEnvs):
    """``cfg.num_envs`` pixel envs, env b in worker process b (seeded ``seed + b``), stepped in lockstep."""

    def __init__(self, cfg: PixelEnvConfig, seed: int = 0) -> None:
        self.cfg = cfg
        self.envs = []  # no env objects here: they live in the workers
        self.seeds = [seed + b for b in range(cfg.num_envs)]
        self._conns: list[Connection] = []
        self._procs: list[subprocess.Popen] = []
        self._closed = False
        try:
            for env_seed in self.seeds:
                self._start_worker(cfg, env_seed)
            specs = self._receive_all(range(cfg.num_envs))  # all workers build their env at the same time
        except BaseException:
            self.close()
            raise
        self._init_batch(cfg, cfg.num_envs, *specs[0])

    def _start_worker(self, cfg: PixelEnvConfig, seed: int) -> None:
        parent_end, child_end = socket.socketpair()
        path = os.pathsep.join(p for p in sys.path if p)  # import worldmodel from where the parent did
        with child_end:  # only the worker keeps it open: its exit shows here as EOF
            proc = subprocess.Popen(
                [sys.executable, "-c", WORKER_CODE, str(child_end.fileno())],
                pass_fds=(child_end.fileno(),),
                env={**os.environ, "PYTHONPATH": path},
            )
        self._procs.append(proc)
        self._conns.append(Connection(parent_end.detach()))
        self._conns[-1].send((cfg, seed))

    def _reset_all(self) -> np.ndarray:
        for conn in self._conns:
            conn.send(("reset", None))
        return np.stack(self._receive_all(range(self.num_envs)))  # (B, C, H, W)

    def _step_envs(self, index: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        for b, action in zip(index, actions):  # send every action first: the workers step together
            self._conns[b].send(("step", action))
        return unzip_steps(self._receive_all(index), self.obs_shape)

    def _receive_all(self, index) -> list[Any]:
        """Every listed worker's answer, in order; then the first worker error, raised here with its message."""
        replies = [self._receive(b) for b in index]
        for b, reply in zip(index, replies):
            if reply[0] == "error":
                _, err, text = reply
                err.add_note(f"in pixel env worker {b} ({self.cfg.id}, seed {self.seeds[b]}):\n{text.rstrip()}")
                raise err
        return [reply[1] for reply in replies]

    def _receive(self, b: int) -> tuple:
        try:
            return self._conns[b].recv()
        except (EOFError, OSError):
            try:
                code = self._procs[b].wait(1.0)
            except subprocess.TimeoutExpired:
                code = None
            return "error", RuntimeError(f"pixel env worker {b} died (exit code {code})"), ""

    def close(self) -> None:
        """Ask every worker to exit, wait up to ``CLOSE_TIMEOUT_S`` each, kill any still running. Idempotent."""
        if self._closed:
            return
        self._closed = True
        for conn in self._conns:
            try:
                conn.send(("close", None))
            except (BrokenPipeError, OSError):
                pass  # already gone
        for proc in self._procs:
            try:
                proc.wait(CLOSE_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for conn in self._conns:
            conn.close()
