"""Environments seen through a camera: 64x64 RGB frames from dm_control suite tasks
(``dmc:cartpole-swingup``) and gymnasium MuJoCo ids (``HalfCheetah-v5``).

Each env owns one ``mujoco.Renderer`` and renders ONCE per agent step, after the last of its
``action_repeat`` physics steps, directly at the frame size the model takes. Shadows and
reflections are scene flags, off by default: on CPU (software EGL) they cost about 6-8x.

    envs = make_pixel_envs(PixelEnvConfig(id="dmc:cartpole-swingup", num_envs=2), seed=0)  # 2 worker processes
    obs = envs.reset()                                   # (B, C, H, W) uint8
    obs, reward, done = envs.step(actions)               # actions (B, A) in [-1, 1]

``make_pixel_envs`` (in ``pixel_factory.py``) puts each env in its own worker process when ``num_envs > 1``
(``pixel_workers.py``, which builds on this module), so the B envs step and render at the same time; one env
stays in this process.

``mujoco``, ``dm_control`` and ``gymnasium`` are imported inside the functions that build an env, after
``MUJOCO_GL`` has been chosen: mujoco reads it once, at import.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from worldmodel.config import check
from worldmodel.errors import UserError

DMC_PREFIX = "dmc:"
# PlaNet's action repeats per dm_control domain (Hafner et al. 2019, table 1); 2 elsewhere.
PLANET_ACTION_REPEAT = {"cartpole": 8, "reacher": 4, "cheetah": 4, "finger": 2, "ball_in_cup": 4, "walker": 2}
GYM_ACTION_REPEAT = {"HalfCheetah": 4}
DEFAULT_ACTION_REPEAT = 2
# PlaNet calls ball_in_cup "cup"; accept its names too.
DMC_DOMAIN_ALIASES = {"cup": "ball_in_cup"}
DMC_EPISODE_STEPS = 1000  # every suite task's time limit, in control steps
GL_BACKENDS = "egl, osmesa or glfw"


@dataclass
class PixelEnvConfig:
    id: str = "dmc:cartpole-swingup"
    """dmc:DOMAIN-TASK (any dm_control suite task; dmc:cup-catch = dmc:ball_in_cup-catch) or a gymnasium MuJoCo id."""
    action_repeat: int | None = None
    """Physics steps per agent step, rewards summed; None: PlaNet's value (cartpole 8, reacher/cheetah/cup 4, else 2)."""
    image_size: int = 64
    """Frames are image_size x image_size RGB, rendered at that size directly."""
    shadows: bool = False
    """Render shadows (about 6x slower on CPU)."""
    reflections: bool = False
    """Render floor reflections."""
    max_episode_steps: int | None = None
    """Episode length in agent steps; None: the env's own limit divided by the action repeat."""
    num_envs: int = 1
    """Environments stepped together; the planner plans for all of them in one batched call."""
    camera: str | int | None = None
    """Camera name or index; None: camera 0 for dm_control (PlaNet), the 'track' camera for gymnasium."""

    TIED: ClassVar[dict[str, str]] = {"action_repeat": "id"}
    """A config file's action_repeat belongs to its env: when an override (``--env``, ``env.id=``) changes
    the env, it falls back to null (PlaNet's value for the new env) unless ``env.action_repeat=`` is given too."""

    def __post_init__(self) -> None:
        check(bool(self.id.strip()), "env.id must not be empty; e.g. dmc:cartpole-swingup or HalfCheetah-v5")
        check(
            self.action_repeat is None or self.action_repeat >= 1,
            f"env.action_repeat must be >= 1 (or null for PlaNet's default), got {self.action_repeat}",
        )
        check(8 <= self.image_size <= 512, f"env.image_size must be between 8 and 512 pixels, got {self.image_size}")
        check(
            self.max_episode_steps is None or self.max_episode_steps >= 1,
            f"env.max_episode_steps must be >= 1 (or null for the env's own length), got {self.max_episode_steps}",
        )
        check(self.num_envs >= 1, f"env.num_envs must be >= 1, got {self.num_envs}")


def is_dmc(env_id: str) -> bool:
    return env_id.startswith(DMC_PREFIX)


def parse_dmc_id(env_id: str) -> tuple[str, str]:
    """``"dmc:cup-catch"`` -> ``("ball_in_cup", "catch")``, checked against the suite's task list."""
    from dm_control import suite

    name = env_id[len(DMC_PREFIX) :]
    domain, sep, task = name.partition("-")
    domain = DMC_DOMAIN_ALIASES.get(domain, domain)
    domains = sorted({d for d, _ in suite.ALL_TASKS})
    if not sep or not task:
        raise UserError(f"env {env_id!r} must look like dmc:DOMAIN-TASK, e.g. dmc:cartpole-swingup")
    if domain not in domains:
        raise UserError(f"unknown dm_control domain {domain!r} in {env_id!r}; valid domains: {', '.join(domains)}")
    tasks = sorted(t for d, t in suite.ALL_TASKS if d == domain)
    if task not in tasks:
        raise UserError(f"unknown task {task!r} for dm_control domain {domain!r}; valid tasks: {', '.join(tasks)}")
    return domain, task


def default_action_repeat(env_id: str) -> int:
    """PlaNet's action repeat for this env (cartpole 8, reacher 4, cheetah 4, finger 2, cup 4, walker 2)."""
    if is_dmc(env_id):
        domain = env_id[len(DMC_PREFIX) :].partition("-")[0]
        return PLANET_ACTION_REPEAT.get(DMC_DOMAIN_ALIASES.get(domain, domain), DEFAULT_ACTION_REPEAT)
    return GYM_ACTION_REPEAT.get(env_id.split("-")[0], DEFAULT_ACTION_REPEAT)


def resolved_action_repeat(cfg: PixelEnvConfig) -> int:
    return cfg.action_repeat if cfg.action_repeat is not None else default_action_repeat(cfg.id)


class Simulator:
    """One physics backend behind three verbs: reset, step one physics step, and model/data to render."""

    low: np.ndarray  # (A,) action bounds of the env
    high: np.ndarray  # (A,)
    episode_steps: int  # the env's own limit in physics steps (control steps for dm_control)
    model: Any  # mujoco.MjModel
    data: Any  # mujoco.MjData
    default_camera: str | int

    def reset(self) -> None:
        raise NotImplementedError

    def step(self, action: np.ndarray) -> tuple[float, bool]:
        """One control step with an action inside [low, high] -> (reward, episode ended)."""
        raise NotImplementedError


class DMCSimulator(Simulator):
    def __init__(self, domain: str, task: str, seed: int | None) -> None:
        from dm_control import suite

        self.env = suite.load(domain, task, task_kwargs={"random": seed})
        spec = self.env.action_spec()
        self.low, self.high = spec.minimum.astype(np.float64), spec.maximum.astype(np.float64)
        self.episode_steps = DMC_EPISODE_STEPS
        self.model, self.data = self.env.physics.model.ptr, self.env.physics.data.ptr
        self.default_camera = 2 if domain == "quadruped" else 0  # PlaNet's choice

    def reset(self) -> None:
        self.time_step = self.env.reset()

    def step(self, action: np.ndarray) -> tuple[float, bool]:
        self.time_step = self.env.step(action)  # kept: the state env reads its observation
        return float(self.time_step.reward or 0.0), self.time_step.last()


class GymSimulator(Simulator):
    def __init__(self, env_id: str, seed: int) -> None:
        import gymnasium as gym

        try:
            wrapped = gym.make(env_id)
        except gym.error.Error as err:
            raise UserError(
                f"unknown environment {env_id!r} ({err}); use a gymnasium MuJoCo id such as HalfCheetah-v5 "
                "or dmc:DOMAIN-TASK for dm_control"
            ) from None
        self.env = wrapped.unwrapped  # step the raw env: the time limit is counted by PixelEnv
        if not (hasattr(self.env, "model") and hasattr(self.env, "data")):
            raise UserError(f"environment {env_id!r} is not a MuJoCo env; pixels need one, e.g. HalfCheetah-v5")
        self.low = self.env.action_space.low.astype(np.float64)
        self.high = self.env.action_space.high.astype(np.float64)
        self.episode_steps = wrapped.spec.max_episode_steps or 1000
        self.model, self.data = self.env.model, self.env.data
        self.default_camera = "track"
        self.seed = seed
        self._seeded = False

    def reset(self) -> None:
        # Seed the first reset only: later resets continue the same random stream.
        self.env.reset(seed=None if self._seeded else self.seed)
        self._seeded = True

    def step(self, action: np.ndarray) -> tuple[float, bool]:
        _, reward, terminated, _, _ = self.env.step(action)
        return float(reward), bool(terminated)


class FrameRenderer:
    """One reusable ``mujoco.Renderer`` at the frame size, with shadows/reflections switched."""

    def __init__(self, sim: Simulator, cfg: PixelEnvConfig) -> None:
        import mujoco

        self.mujoco = mujoco
        size = cfg.image_size
        try:
            self.renderer = mujoco.Renderer(sim.model, size, size)
        except ValueError as err:  # larger than the model's offscreen framebuffer
            raise UserError(f"env.image_size={size} is too large for {cfg.id}: {str(err).splitlines()[0]}") from None
        except Exception as err:  # noqa: BLE001 - any GL failure means the backend cannot render
            raise gl_error(err) from None
        self.sim = sim
        self.camera = resolve_camera(mujoco, sim, cfg.camera)
        self.renderer.update_scene(sim.data, camera=self.camera)
        # Scene flags survive update_scene, so setting them once is enough.
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = cfg.shadows
        self.renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = cfg.reflections

    def render(self) -> np.ndarray:
        """The current frame, (C, H, W) uint8."""
        self.renderer.update_scene(self.sim.data, camera=self.camera)
        frame = self.renderer.render()  # (H, W, C)
        return np.ascontiguousarray(frame.transpose(2, 0, 1))

    def close(self) -> None:
        self.renderer.close()


def resolve_camera(mujoco: Any, sim: Simulator, camera: str | int | None) -> str | int:
    """A camera index/name that exists in the model; gymnasium models without 'track' use the free camera."""
    camera = sim.default_camera if camera is None else camera
    names = [mujoco.mj_id2name(sim.model, mujoco.mjtObj.mjOBJ_CAMERA, i) for i in range(sim.model.ncam)]
    if isinstance(camera, str) and camera not in names:
        if camera == "track" and camera == sim.default_camera:
            return -1  # the free camera: gymnasium's own default for such models
        raise UserError(f"camera {camera!r} not in this model; valid cameras: {', '.join(map(str, names)) or 'none'}")
    if isinstance(camera, int) and not -1 <= camera < sim.model.ncam:
        raise UserError(f"camera index {camera} out of range; this model has {sim.model.ncam} cameras (-1 = free)")
    return camera


def gl_error(err: BaseException) -> UserError:
    backend = os.environ.get("MUJOCO_GL", "")
    reason = str(err).splitlines()[0] if str(err) else type(err).__name__
    return UserError(
        f"cannot render headless with MUJOCO_GL={backend!r} ({reason}); set MUJOCO_GL to one of {GL_BACKENDS}"
    )


class PixelEnv:
    """One environment: actions in [-1, 1], rewards summed over the action repeat, a frame per step."""

    def __init__(self, cfg: PixelEnvConfig, sim: Simulator) -> None:
        self.sim = sim
        self.action_repeat = resolved_action_repeat(cfg)
        self.max_episode_steps = cfg.max_episode_steps or max(1, sim.episode_steps // self.action_repeat)
        self.renderer = FrameRenderer(sim, cfg)
        self.action_size = int(sim.low.shape[0])
        self.steps = 0

    def reset(self) -> np.ndarray:
        """Start an episode; the first frame (C, H, W) uint8."""
        self.sim.reset()
        self.steps = 0
        return self.renderer.render()

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool]:
        """``action`` (A,) in [-1, 1] -> (frame (C, H, W) uint8, summed reward, done)."""
        action = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        scaled = self.sim.low + (action + 1.0) * 0.5 * (self.sim.high - self.sim.low)  # (A,)
        total, ended = 0.0, False
        for _ in range(self.action_repeat):
            reward, ended = self.sim.step(scaled)
            total += reward
            if ended:  # the env's own end: stepping further would auto-reset dm_control
                break
        self.steps += 1
        done = ended or self.steps >= self.max_episode_steps
        return self.renderer.render(), total, done

    def close(self) -> None:
        self.renderer.close()


class PixelEnvs:
    """``num_envs`` environments stepped in lockstep, here in this process (``WorkerPixelEnvs``: the same
    interface, one worker process per env). An env that finished holds its last frame, reports reward 0
    and done=True until ``reset``; ``done.all()`` ends the batch's episode."""

    def __init__(self, envs: list[PixelEnv], cfg: PixelEnvConfig) -> None:
        self.envs = envs
        first = envs[0]
        self._init_batch(cfg, len(envs), first.action_size, first.action_repeat, first.max_episode_steps)

    def _init_batch(
        self, cfg: PixelEnvConfig, num_envs: int, action_size: int, action_repeat: int, max_episode_steps: int
    ) -> None:
        self.cfg = cfg
        self.num_envs = num_envs
        self.action_size = action_size
        self.action_repeat = action_repeat
        self.max_episode_steps = max_episode_steps
        self.obs_shape = (3, cfg.image_size, cfg.image_size)  # (C, H, W)
        self._done = np.zeros(self.num_envs, dtype=bool)
        self._last = np.zeros((self.num_envs, *self.obs_shape), dtype=np.uint8)

    def reset(self) -> np.ndarray:
        """First frames of new episodes, (B, C, H, W) uint8."""
        self._last = self._reset_all()
        self._done[:] = False
        return self._last.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``actions`` (B, A) in [-1, 1] -> frames (B, C, H, W) uint8, rewards (B,), done (B,)."""
        assert actions.shape == (self.num_envs, self.action_size), (actions.shape, (self.num_envs, self.action_size))
        rewards = np.zeros(self.num_envs, dtype=np.float32)
        active = np.flatnonzero(~self._done)  # (B',) the envs still in their episode
        frames, active_rewards, done = self._step_envs(active, actions[active])
        self._last[active], rewards[active], self._done[active] = frames, active_rewards, done
        return self._last.copy(), rewards, self._done.copy()

    def _reset_all(self) -> np.ndarray:
        """Reset every env -> first frames (B, C, H, W)."""
        return np.stack([env.reset() for env in self.envs])

    def _step_envs(self, index: np.ndarray, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Step envs ``index`` (B',) with ``actions`` (B', A) -> frames (B', C, H, W), rewards (B',), done (B',)."""
        results = [self.envs[i].step(action) for i, action in zip(index, actions)]
        return unzip_steps(results, self.obs_shape)

    def close(self) -> None:
        for env in self.envs:
            env.close()


def unzip_steps(
    results: list[tuple[np.ndarray, float, bool]], obs_shape: tuple[int, ...]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """B' results of ``PixelEnv.step`` -> frames (B', C, H, W), rewards (B',), done (B',)."""
    frames = np.stack([r[0] for r in results]) if results else np.zeros((0, *obs_shape), np.uint8)
    return frames, np.array([r[1] for r in results], np.float32), np.array([r[2] for r in results], bool)


def import_simulators(env_id: str) -> None:
    """Import mujoco (and dm_control for a ``dmc:`` id) headless unless the user chose a GL backend;
    a backend that cannot start is a ``UserError``. Call before building any MuJoCo env."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        import mujoco  # noqa: F401 - reads MUJOCO_GL now, and fails on values it does not know

        if is_dmc(env_id):
            from dm_control import suite  # noqa: F401 - picks its own GL backend at import
    except (RuntimeError, ImportError, OSError) as err:
        raise gl_error(err) from None


def make_pixel_env(cfg: PixelEnvConfig, seed: int = 0) -> PixelEnv:
    """One pixel env; any problem with the id, the frame size or the GL backend is a ``UserError``."""
    import_simulators(cfg.id)
    if is_dmc(cfg.id):
        domain, task = parse_dmc_id(cfg.id)
        sim: Simulator = DMCSimulator(domain, task, seed)
    else:
        sim = GymSimulator(cfg.id, seed)
    return PixelEnv(cfg, sim)

