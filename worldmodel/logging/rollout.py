"""Film one episode of a trained agent: the frames a person watches, and the return.

- ``record_state_episode``: a gymnasium MuJoCo vector env (the state agent's), filmed by a
  ``mujoco.Renderer`` of our own at a watchable size from the cheetah's tracking camera, whatever
  ``render_mode`` the env was made with (so the training envs need no renderer).
- ``record_pixel_episode``: a ``PixelEnvs`` (the pixel agent's), filmed from the frames the agent
  sees, upscaled; optionally the model's reconstruction of each frame beside it.

Both play env 0 of the batch for one whole episode and return ``Rollout(frames (T, H, W, 3) uint8,
rewards (T,))``: one frame per agent step, the frame the action was chosen on, so T is the
episode length. The state agent's evaluation video and ``scripts/export_video.py`` share them.

    envs = policy.make_env(num_envs=1)
    rollout = record_state_episode(envs, policy.act, seed=0)
    logger.video("eval_episode", rollout.frames, step, fps=rollout.fps)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from worldmodel.errors import UserError

STATE_VIDEO_SIZE = 256  # pixels; gymnasium's own 480x480 costs ~4x more to render on CPU
PIXEL_VIDEO_SCALE = 4  # 64x64 model frames -> 256x256


@dataclass
class Rollout:
    frames: np.ndarray
    """(T, H, W, 3) uint8, one per agent step."""
    rewards: np.ndarray
    """(T,) float64: the reward after each step's action."""
    fps: float = 20.0
    """Real-time frame rate of the episode (agent steps per simulated second)."""

    @property
    def episode_return(self) -> float:
        return float(self.rewards.sum())

    def __len__(self) -> int:
        return len(self.frames)


class EnvCamera:
    """Renders env 0 of a gymnasium MuJoCo (vector) env with its own ``mujoco.Renderer``.

    ``camera``: a camera name or index; None: the model's ``track`` camera when it has one
    (HalfCheetah's follows the body), else the free camera. ``shadows``: shadows and reflections
    (about 8x slower with software rendering on CPU, so off by default).
    """

    def __init__(
        self,
        env: Any,
        height: int = STATE_VIDEO_SIZE,
        width: int = STATE_VIDEO_SIZE,
        camera: str | int | None = None,
        shadows: bool = False,
    ) -> None:
        if not os.environ.get("MUJOCO_GL") and not os.environ.get("DISPLAY"):
            # mujoco picked GLFW at import, which aborts the process without a display.
            raise UserError("cannot render without a display: set MUJOCO_GL=egl (or osmesa) before starting python")
        import mujoco

        base = env.envs[0] if hasattr(env, "envs") else env  # vector env -> its first env
        base = base.unwrapped
        if not (hasattr(base, "model") and hasattr(base, "data")):
            raise UserError(f"cannot film {type(base).__name__}: it is not a MuJoCo environment")
        self.model, self.data = base.model, base.data
        names = [mujoco.mj_id2name(self.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(self.model.ncam)]
        self.camera = camera if camera is not None else ("track" if "track" in names else -1)
        # The model's offscreen framebuffer caps the size (640x480 unless the XML says otherwise).
        height = min(height, int(self.model.vis.global_.offheight))
        width = min(width, int(self.model.vis.global_.offwidth))
        self.renderer = mujoco.Renderer(self.model, height, width)
        # Scene flags survive update_scene: setting them once is enough.
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = shadows
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = shadows

    def render(self) -> np.ndarray:
        """The current frame of env 0, (H, W, 3) uint8."""
        self.renderer.update_scene(self.data, camera=self.camera)
        return self.renderer.render().copy()

    def close(self) -> None:
        self.renderer.close()


def env_fps(env: Any, default: float = 20.0) -> float:
    """Agent steps per simulated second of a gymnasium env (HalfCheetah-v5: 20, cheetah-cs285: 100)."""
    fps = (getattr(env, "metadata", None) or {}).get("render_fps")
    return float(fps) if fps else default


def record_state_episode(
    envs: Any,
    act: Callable[[np.ndarray], np.ndarray],
    *,
    seed: int | None = None,
    max_steps: int | None = None,
    size: int = STATE_VIDEO_SIZE,
    camera: str | int | None = None,
    shadows: bool = False,
) -> Rollout:
    """Play one episode in a gymnasium vector env with ``act(obs (B, S)) -> actions (B, A)`` and film env 0.

    The episode ends when env 0 terminates or is truncated (its time limit), or after ``max_steps``.
    Use ``num_envs=1``: every env is stepped, only env 0 is filmed and scored.
    """
    film = EnvCamera(envs, size, size, camera, shadows)
    try:
        obs, _ = envs.reset(seed=seed)  # (B, S)
        frames, rewards = [], []
        while max_steps is None or len(frames) < max_steps:
            frames.append(film.render())
            actions = np.asarray(act(obs), dtype=np.float32)  # (B, A)
            obs, reward, terminated, truncated, _ = envs.step(actions)
            rewards.append(float(reward[0]))
            if terminated[0] or truncated[0]:
                break
    finally:
        film.close()
    return Rollout(np.stack(frames), np.asarray(rewards), fps=env_fps(envs))


def replay_state_episode(
    envs: Any,
    obs: np.ndarray,
    rewards: np.ndarray,
    *,
    size: int = STATE_VIDEO_SIZE,
    camera: str | int | None = None,
    shadows: bool = False,
) -> Rollout:
    """Film an episode that was already played, from its observations (T, S): each one is set as the
    simulator state of env 0 (qpos = obs[:nq], qvel = obs[nq:nq + nv]) and rendered. No acting, so a
    training loop can show one of the episodes it just collected for free. Only for envs whose
    observation starts with the full state (both state envs here keep x in it for the exact reward)."""
    import mujoco

    film = EnvCamera(envs, size, size, camera, shadows)
    nq, nv = film.model.nq, film.model.nv
    if obs.shape[-1] < nq + nv:
        film.close()
        raise UserError(f"cannot replay: observations of size {obs.shape[-1]} do not hold qpos ({nq}) and qvel ({nv})")
    if not observation_starts_with_state(envs, film):
        film.close()
        raise UserError("cannot replay: the observation does not start with qpos and qvel (positions excluded?)")
    try:
        frames = []
        for state in obs:  # (S,)
            film.data.qpos[:] = state[:nq]
            film.data.qvel[:] = state[nq : nq + nv]
            mujoco.mj_forward(film.model, film.data)
            frames.append(film.render())
    finally:
        film.close()
    return Rollout(np.stack(frames), np.asarray(rewards, dtype=np.float64), fps=env_fps(envs))


def observation_starts_with_state(envs: Any, film: EnvCamera) -> bool:
    """Whether env 0's observation after a reset is [qpos, qvel, ...], so that states can be replayed from it
    (Ant-v5 without x, y starts with qpos[2:]: it cannot)."""
    obs, _ = envs.reset(seed=0)  # (B, S)
    nq, nv = film.model.nq, film.model.nv
    state = np.concatenate([film.data.qpos, film.data.qvel])  # (nq + nv,)
    return bool(np.allclose(obs[0][: nq + nv], state, atol=1e-6))


def record_pixel_episode(
    envs: Any,
    policy: Any,
    *,
    side_by_side: bool = False,
    explore: bool = False,
    max_steps: int | None = None,
    scale: int = PIXEL_VIDEO_SCALE,
    fps: float = 20.0,
) -> Rollout:
    """Play one episode in ``PixelEnvs`` with a pixel policy (``reset()``, ``act(frames, explore)``,
    ``reconstruct()``) and film env 0 from its own frames, upscaled ``scale`` times.

    ``side_by_side``: each frame is [real | the model's reconstruction of it], (H, 2W) before upscaling.
    """
    policy.reset()
    obs = envs.reset()  # (B, C, H, W) uint8
    frames, rewards = [], []
    while max_steps is None or len(frames) < max_steps:
        actions = policy.act(obs, explore=explore)  # (B, A)
        frame = obs[0]  # (C, H, W): the frame this action was chosen on
        if side_by_side:
            frame = np.concatenate([frame, policy.reconstruct()[0]], axis=-1)  # (C, H, 2W)
        frames.append(frame)
        obs, reward, done = envs.step(np.asarray(actions, dtype=np.float32))
        rewards.append(float(reward[0]))
        if done[0]:
            break
    video = np.moveaxis(np.stack(frames), 1, -1)  # (T, C, H, W) -> (T, H, W, C)
    video = video.repeat(scale, axis=1).repeat(scale, axis=2)  # nearest-neighbour upscaling
    return Rollout(np.ascontiguousarray(video, dtype=np.uint8), np.asarray(rewards), fps=fps)


def pixel_env_fps(envs: Any, default: float = 20.0) -> float:
    """Agent steps per simulated second of ``PixelEnvs``: 1 / (control timestep x action repeat)."""
    try:
        sim = envs.envs[0].sim
        if hasattr(sim.env, "control_timestep"):  # dm_control
            dt = float(sim.env.control_timestep())
        else:  # gymnasium MuJoCo
            dt = float(sim.env.dt)
        return 1.0 / (dt * envs.action_repeat)
    except (AttributeError, IndexError, ZeroDivisionError):
        return default
