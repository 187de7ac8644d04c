"""The pixel agent (PlaNet): learn an RSSM world model from 64x64 frames and act with CEM in its
latent space.

    python train/agent.py --obs pixels                                   # the CPU default, ~15 min
    python train/agent.py --obs pixels --config configs/pixels_smoke.yaml --logdir /tmp/smoke
    python train/agent.py --resume /tmp/smoke                            # continue from its checkpoint

The loop: seed episodes with random actions (plus a few held-out ones, never trained on, to
measure reconstruction on frames the model has not seen); then repeat ``update_model`` (C gradient
steps on sampled chunks), ``collect`` (one episode per env, planning in latent space with
exploration noise) and, every few episodes, ``evaluate`` (no noise) and ``log_media``.

Everything a run needs to continue lives in ``PixelRun`` (world model + optimizer, replay, RNG
states, counters), checkpointed atomically every ``checkpoint_every`` episodes, at the end and
on Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import numpy as np
import torch
from tqdm import tqdm

from worldmodel.agents.common import (
    WandbConfig,
    check_resume_target,
    default_logdir,
    load_run_config,
    prepare_logdir,
    resolve_device,
    restore_rng_state,
    rng_state,
    seed_everything,
)
from worldmodel.checkpoint import load_checkpoint, save_checkpoint
from worldmodel.config import check, load_config, save_config, to_dict
from worldmodel.data.episodes import EpisodeReplay, ReplayConfig
from worldmodel.envs.pixels import PixelEnvConfig, PixelEnvs, make_pixel_envs
from worldmodel.errors import UserError
from worldmodel.logging.logger import Logger
from worldmodel.logging.logger import trim_metrics as logger_trim_metrics
from worldmodel.logging.media import episode_video, openl_video, recon_grid
from worldmodel.models.world_model import WorldModel, WorldModelConfig, batch_to_torch, check_image_shape
from worldmodel.planning.cem import CEMPlanner, PlannerConfig

CHECKPOINT_NAME = "checkpoint.pt"
HELDOUT_SEED_OFFSET = 10_007  # the held-out chunks are drawn from their own, fixed stream
OPENL_CONTEXT = 5  # frames filtered by the posterior before the open-loop prior takes over
MEDIA_SEQUENCES = 4  # sequences side by side in the open-loop video
RECON_FRAMES = 8  # frames in the reconstruction grid
MEDIA_SCALE = 2  # 64x64 frames are tiny in a browser


@dataclass
class PixelTrainConfig:
    episodes: int = 20
    """Total training episodes to collect, seed and held-out-free (one per env per collection)."""
    seed_episodes: int = 5
    """Episodes of uniform random actions collected before any training (PlaNet: 5)."""
    train_steps: int = 50
    """C, gradient steps on sampled chunks before each collected episode (PlaNet: 100)."""
    batch_size: int = 16
    """B, chunks per gradient step (PlaNet: 50)."""
    chunk_length: int = 25
    """T, steps per chunk (PlaNet: 50)."""
    exploration_noise: float = 0.3
    """Std of the Gaussian noise added to planned actions while collecting (PlaNet: 0.3)."""
    eval_every: int = 5
    """Evaluate (planner, no noise) every this many training episodes, and after the last."""
    eval_episodes: int = 1
    """Episodes per evaluation (run num_envs at a time)."""
    heldout_episodes: int = 1
    """Random-action episodes kept out of training; reconstruction loss on them is heldout_recon_loss (0: off)."""
    heldout_chunks: int = 16
    """Fixed chunks drawn from the held-out episodes for heldout_recon_loss."""
    media_every: int = 5
    """Log the recon grid, the open-loop video and an evaluation video every this many episodes, and after the last."""
    checkpoint_every: int = 5
    """Save logdir/checkpoint.pt every this many episodes, and at the end."""

    def __post_init__(self) -> None:
        for name in ("episodes", "train_steps", "batch_size", "eval_every", "eval_episodes"):
            value = getattr(self, name)
            check(value >= 1, f"train.{name} must be >= 1, got {value}")
        for name in ("media_every", "checkpoint_every", "heldout_chunks"):
            value = getattr(self, name)
            check(value >= 1, f"train.{name} must be >= 1, got {value}")
        check(self.seed_episodes >= 1, f"train.seed_episodes must be >= 1, got {self.seed_episodes}")
        check(self.heldout_episodes >= 0, f"train.heldout_episodes must be >= 0, got {self.heldout_episodes}")
        check(self.chunk_length >= 2, f"train.chunk_length must be >= 2, got {self.chunk_length}")
        check(self.exploration_noise >= 0, f"train.exploration_noise must be >= 0, got {self.exploration_noise}")
        check(
            self.episodes > self.seed_episodes,
            f"train.episodes ({self.episodes}) must be larger than train.seed_episodes ({self.seed_episodes}) "
            "so that at least one episode is planned",
        )


def cpu_default_env() -> PixelEnvConfig:
    return PixelEnvConfig(id="dmc:cartpole-swingup")


def cpu_default_model() -> WorldModelConfig:
    return WorldModelConfig(belief_size=100, state_size=20, hidden_size=100, embedding_size=256, cnn_depth=16)


def cpu_default_planner() -> PlannerConfig:
    # PlaNet's CEM (Gaussian start, top-k refit) with fewer candidates and iterations.
    return PlannerConfig(kind="cem", horizon=10, candidates=100, iterations=4, elites=10, init="gaussian")


@dataclass
class PixelAgentConfig:
    seed: int = 0
    """Seeds python, numpy, torch, the planner and the environments."""
    device: str = "auto"
    """auto (cuda when available), cpu or cuda."""
    env: PixelEnvConfig = field(default_factory=cpu_default_env)
    """The environment seen through its camera."""
    model: WorldModelConfig = field(default_factory=cpu_default_model)
    """The RSSM world model (PlaNet sizes: belief 200, state 30, hidden 200, embedding 1024, cnn_depth 32)."""
    replay: ReplayConfig = field(default_factory=lambda: ReplayConfig(capacity_mb=1024.0))
    """Episode replay with its memory cap."""
    planner: PlannerConfig = field(default_factory=cpu_default_planner)
    """Latent CEM (PlaNet: 1000 candidates, top 100, 10 iterations, horizon 12)."""
    train: PixelTrainConfig = field(default_factory=PixelTrainConfig)
    """Loop sizes and how often to evaluate, log media and checkpoint."""
    logger: Literal["wandb", "none"] = "wandb"
    """wandb (offline by default) and metrics.jsonl, or metrics.jsonl only."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """wandb project, run name, tags and mode."""

    def __post_init__(self) -> None:
        check(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda; got {self.device!r}")
        check_image_shape((3, self.env.image_size, self.env.image_size))


# ---- acting ---------------------------------------------------------------------------------


class PixelPolicy:
    """Acts from frames: filters each frame into the posterior state, then plans from it with latent CEM.

    >>> policy.reset()
    >>> actions = policy.act(frames)          # frames uint8 (B, C, H, W) -> actions (B, A) numpy in [-1, 1]
    >>> seen = policy.reconstruct()           # the model's picture of the last frame, uint8 (B, C, H, W)
    """

    def __init__(
        self,
        world_model: WorldModel,
        planner: CEMPlanner,
        *,
        exploration_noise: float = 0.0,
        generator: torch.Generator | None = None,
        make_envs: Callable[..., PixelEnvs] | None = None,
    ) -> None:
        self.world_model = world_model
        self.planner = planner
        self.exploration_noise = exploration_noise
        self.generator = generator
        self.make_envs = make_envs
        """``make_envs(num_envs=1, seed=0)``: the envs this agent was trained on (for export scripts)."""
        self.state = None  # posterior (B), created on the first frame of an episode
        self.plan_seconds = 0.0
        self.plan_calls = 0

    def reset(self) -> None:
        """Start of new episodes: forget the belief, the previous action and the previous plan."""
        self.state = None
        self.planner.reset()

    @torch.no_grad()
    def act(self, obs: np.ndarray, explore: bool = False) -> np.ndarray:
        """Frames uint8 (B, C, H, W) -> actions (B, A) in [-1, 1], planned for all B envs in one call."""
        started = time.perf_counter()
        wm = self.world_model
        B = obs.shape[0]
        if self.state is None:  # first frame: the state resets and no action led here
            self.state = wm.initial_state(B)
            self._previous_action = torch.zeros(B, wm.action_size, device=wm.device)  # (B, A)
            is_first = torch.ones(B, dtype=torch.bool, device=wm.device)
        else:
            is_first = torch.zeros(B, dtype=torch.bool, device=wm.device)
        self.state = wm.filter_step(self.state, self._previous_action, obs, is_first)
        state = self.state
        plan = self.planner.plan(lambda actions: wm.imagine_returns(state, actions), batch_size=B)  # (B, L, A)
        action = plan[:, 0]  # (B, A)
        if explore and self.exploration_noise > 0:
            noise = torch.randn(action.shape, device=action.device, generator=self.generator)
            action = (action + self.exploration_noise * noise).clamp(-1.0, 1.0)
        self._previous_action = action
        actions = action.cpu().numpy()  # the one host copy per env step, after planning
        self.plan_seconds += time.perf_counter() - started
        self.plan_calls += 1
        return actions

    @torch.no_grad()
    def reconstruct(self) -> np.ndarray:
        """The decoded posterior of the last frame given to ``act``: uint8 (B, C, H, W)."""
        if self.state is None:
            raise UserError("reconstruct() needs a frame first: call act(obs) after reset()")
        wm = self.world_model
        return wm.postprocess(wm.decode(self.state.h, self.state.z)).cpu().numpy()


def random_actions(rng: np.random.Generator, num_envs: int, action_size: int) -> Callable[[np.ndarray], np.ndarray]:
    """A policy of uniform random actions in [-1, 1] (seed episodes)."""
    return lambda obs: rng.uniform(-1.0, 1.0, size=(num_envs, action_size)).astype(np.float32)


@dataclass
class Episodes:
    """One episode per env, in the replay's aligned steps (step 0: first frame, zero action, zero reward)."""

    obs: list[list[np.ndarray]]  # per env, T_b frames (C, H, W)
    action: list[list[np.ndarray]]  # per env, T_b actions (A,)
    reward: list[list[float]]  # per env, T_b rewards

    @property
    def returns(self) -> np.ndarray:
        return np.array([sum(r) for r in self.reward], dtype=np.float64)  # (B,)

    @property
    def agent_steps(self) -> int:
        return sum(len(r) - 1 for r in self.reward)

    def add_to(self, replay: EpisodeReplay) -> None:
        for obs, action, reward in zip(self.obs, self.action, self.reward):
            replay.add_episode(np.stack(obs), np.stack(action), np.asarray(reward, np.float32))


def run_episodes(envs: PixelEnvs, policy: Callable[[np.ndarray], np.ndarray], desc: str) -> Episodes:
    """Play one episode in every env with ``policy(frames (B, C, H, W)) -> actions (B, A)``."""
    obs = envs.reset()  # (B, C, H, W)
    B, A = envs.num_envs, envs.action_size
    episodes = Episodes(
        obs=[[obs[b]] for b in range(B)],
        action=[[np.zeros(A, np.float32)] for _ in range(B)],
        reward=[[0.0] for _ in range(B)],
    )
    done = np.zeros(B, dtype=bool)
    with tqdm(total=envs.max_episode_steps, desc=desc, leave=False, unit="step") as bar:
        while not done.all():
            actions = policy(obs)  # (B, A)
            obs, rewards, now_done = envs.step(actions)
            for b in np.flatnonzero(~done):  # envs that finished earlier hold still: nothing to record
                episodes.obs[b].append(obs[b])
                episodes.action[b].append(actions[b].astype(np.float32))
                episodes.reward[b].append(float(rewards[b]))
            done = now_done
            bar.update(1)
    return episodes


# ---- run state ------------------------------------------------------------------------------


class PixelRun:
    """All the state of a training run: world model + optimizer, replay, held-out episodes, RNGs, counters."""

    def __init__(self, cfg: PixelAgentConfig, envs: PixelEnvs, device: torch.device) -> None:
        self.cfg = cfg
        self.envs = envs
        self.device = device
        image_shape = envs.obs_shape
        self.world_model = WorldModel(cfg.model, envs.action_size, image_shape).to(device)
        self.replay = EpisodeReplay(cfg.replay, image_shape, envs.action_size)
        self.heldout = EpisodeReplay(cfg.replay, image_shape, envs.action_size)
        self.rng = np.random.default_rng(cfg.seed)
        self.generator = torch.Generator(device=device).manual_seed(cfg.seed)
        box = torch.ones(envs.action_size, device=device)
        self.planner = CEMPlanner(cfg.planner, low=-box, high=box, generator=self.generator)
        self.policy = PixelPolicy(
            self.world_model, self.planner, exploration_noise=cfg.train.exploration_noise, generator=self.generator
        )
        self.episode = 0  # training episodes collected (seed ones included)
        self.env_steps = 0  # environment steps of training episodes, action repeat included
        self.train_steps = 0  # gradient steps
        self.elapsed = 0.0  # wall seconds spent in this run, over all resumes

    def state_dict(self) -> dict[str, Any]:
        return {
            "world_model": self.world_model.checkpoint_state(),
            "replay": self.replay.state_dict(),
            "heldout": self.heldout.state_dict(),
            "counters": {
                "episode": self.episode,
                "env_steps": self.env_steps,
                "train_steps": self.train_steps,
                "elapsed": self.elapsed,
            },
            "rng": rng_state(self.rng, self.generator),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.world_model.load_checkpoint_state(state["world_model"])
        self.replay.load_state_dict(state["replay"])
        self.heldout.load_state_dict(state["heldout"])
        for key, value in state["counters"].items():
            setattr(self, key, value)
        restore_rng_state(state["rng"], self.rng, self.generator)


# ---- the loop -------------------------------------------------------------------------------


def collect_seed_episodes(run: PixelRun) -> None:
    """Random-action episodes: the held-out ones first (kept out of training), then the seed ones."""
    train = run.cfg.train
    act = random_actions(run.rng, run.envs.num_envs, run.envs.action_size)
    while run.heldout.episodes < train.heldout_episodes:
        run_episodes(run.envs, act, desc="held-out episode").add_to(run.heldout)
    while run.episode < train.seed_episodes:
        episodes = run_episodes(run.envs, act, desc=f"seed episode {run.episode + 1}")
        record_training_episodes(run, episodes)


def record_training_episodes(run: PixelRun, episodes: Episodes) -> None:
    episodes.add_to(run.replay)
    run.episode += run.envs.num_envs
    run.env_steps += episodes.agent_steps * run.envs.action_repeat


def update_model(run: PixelRun) -> dict[str, float]:
    """C gradient steps on chunks sampled from the replay -> the metrics averaged over them."""
    train = run.cfg.train
    history: list[dict[str, torch.Tensor]] = []
    for _ in tqdm(range(train.train_steps), desc="train", leave=False, unit="step"):
        batch = batch_to_torch(run.replay.sample(train.batch_size, train.chunk_length, run.rng), run.device)
        history.append(run.world_model.train_step(batch))
        run.train_steps += 1
    # One host copy for all C steps: the metrics stay on the device until here.
    return {key: float(torch.stack([m[key] for m in history]).mean()) for key in history[0]}


def collect(run: PixelRun) -> Episodes:
    """One planned episode per env, with exploration noise, added to the replay."""
    run.policy.reset()
    episodes = run_episodes(
        run.envs, lambda obs: run.policy.act(obs, explore=True), desc=f"collect episode {run.episode + 1}"
    )
    record_training_episodes(run, episodes)
    return episodes


def evaluate(run: PixelRun) -> tuple[float, np.ndarray]:
    """Planner without noise on ``eval_episodes`` episodes -> (mean return, frames of the first (T, C, H, W))."""
    returns: list[float] = []
    first_frames = None
    while len(returns) < run.cfg.train.eval_episodes:
        run.policy.reset()
        episodes = run_episodes(run.envs, lambda obs: run.policy.act(obs, explore=False), desc="evaluate")
        returns.extend(episodes.returns.tolist())
        if first_frames is None:
            first_frames = np.stack(episodes.obs[0])
    return float(np.mean(returns[: run.cfg.train.eval_episodes])), first_frames


def heldout_batch(run: PixelRun) -> dict[str, torch.Tensor] | None:
    """The same fixed chunks of the held-out episodes every time (None when there are none)."""
    train = run.cfg.train
    length = min(train.chunk_length, len(run.heldout))
    if run.heldout.episodes == 0 or length < 2:
        return None
    rng = np.random.default_rng(run.cfg.seed + HELDOUT_SEED_OFFSET)
    return batch_to_torch(run.heldout.sample(train.heldout_chunks, length, rng), run.device)


@torch.no_grad()
def heldout_recon_loss(run: PixelRun) -> float | None:
    batch = heldout_batch(run)
    if batch is None:
        return None
    _, metrics = run.world_model.loss(batch)
    return float(metrics["recon_loss"])


def log_media(run: PixelRun, logger: Logger, eval_frames: np.ndarray | None) -> None:
    """Reconstruction grid and open-loop video on held-out chunks (training ones if none), evaluation video."""
    train = run.cfg.train
    batch = heldout_batch(run)
    if batch is None:
        length = min(train.chunk_length, len(run.replay))
        batch = batch_to_torch(run.replay.sample(MEDIA_SEQUENCES, length, run.rng), run.device)
    batch = {key: value[:MEDIA_SEQUENCES] for key, value in batch.items()}  # (B', T, ...)
    step = run.env_steps
    recon = run.world_model.reconstruct(batch).cpu().numpy()  # (B', T, C, H, W)
    truth = batch["obs"].cpu().numpy()
    logger.image("recon", recon_grid(truth[0, :RECON_FRAMES], recon[0, :RECON_FRAMES], scale=MEDIA_SCALE), step)
    context = min(OPENL_CONTEXT, truth.shape[1] - 1)
    openl_truth, openl_model = run.world_model.open_loop(batch, context=context)
    logger.video("openl", openl_video(openl_truth.cpu().numpy(), openl_model.cpu().numpy(), MEDIA_SCALE), step, fps=10)
    if eval_frames is not None:
        logger.video("eval_episode", episode_video(eval_frames, MEDIA_SCALE), step, fps=20)


def crossed(before: int, after: int, every: int) -> bool:
    """Did the counter pass a multiple of ``every`` going from ``before`` to ``after``?"""
    return after // every > before // every


def iterate(run: PixelRun, logger: Logger) -> None:
    """One iteration: train, collect, maybe evaluate and log media, log the row."""
    train = run.cfg.train
    started, steps_before, episode_before = time.perf_counter(), run.env_steps, run.episode
    run.policy.plan_seconds, run.policy.plan_calls = 0.0, 0
    metrics = update_model(run)
    collected = collect(run)
    row: dict[str, Any] = {"episode": run.episode, "env_steps": run.env_steps, "train_steps": run.train_steps}
    row.update(metrics)
    row["train_return"] = float(collected.returns.mean())
    row["plan_ms"] = 1000 * run.policy.plan_seconds / max(run.policy.plan_calls, 1)
    heldout = heldout_recon_loss(run)
    if heldout is not None:
        row["heldout_recon_loss"] = heldout
    last = run.episode >= train.episodes
    media_due = last or crossed(episode_before, run.episode, train.media_every)
    eval_frames = None
    if media_due or crossed(episode_before, run.episode, train.eval_every):
        row["AverageReturn"], eval_frames = evaluate(run)
    if media_due:
        log_media(run, logger, eval_frames)
    seconds = time.perf_counter() - started
    run.elapsed += seconds
    row["wall_time"] = run.elapsed
    row["fps"] = (run.env_steps - steps_before) / seconds
    logger.log(row, step=run.env_steps)
    print(summary_line(row), flush=True)


def summary_line(row: dict[str, Any]) -> str:
    keys = ["episode", "env_steps", "recon_loss", "heldout_recon_loss", "kl_loss", "train_return", "AverageReturn"]
    parts = [f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys if k in row]
    return " ".join(parts)


def save(run: PixelRun, logdir: Path) -> Path:
    return save_checkpoint(logdir / CHECKPOINT_NAME, {"kind": "pixels", "run": run.state_dict()})


def train_loop(run: PixelRun, logger: Logger, logdir: Path) -> None:
    """Seed, then iterate until ``train.episodes``; checkpoint every few episodes, at the end and on Ctrl-C."""
    train = run.cfg.train
    try:
        started = time.perf_counter()
        unseeded = run.episode < train.seed_episodes
        collect_seed_episodes(run)
        if unseeded:
            run.elapsed += time.perf_counter() - started
            save(run, logdir)
        while run.episode < train.episodes:
            episode_before = run.episode
            iterate(run, logger)
            if crossed(episode_before, run.episode, train.checkpoint_every) and run.episode < train.episodes:
                save(run, logdir)
    except KeyboardInterrupt:
        # Episodes reach the replay whole and counters move after them, so this state is consistent.
        save(run, logdir)
        print(f"interrupted: checkpoint saved; continue with --resume {logdir}", flush=True)
        raise
    save(run, logdir)


# ---- entry points ---------------------------------------------------------------------------


def prepare(cfg: PixelAgentConfig, checkpoint: dict[str, Any] | None) -> PixelRun:
    """Build envs, model and replay, and check they fit, before anything is written to disk."""
    device = resolve_device(cfg.device)
    seed_everything(cfg.seed)
    # Envs of a resumed run get fresh seeds, so they do not replay the first episodes again.
    episode = checkpoint["run"]["counters"]["episode"] if checkpoint else 0
    envs = make_pixel_envs(cfg.env, seed=cfg.seed + 1000 * episode)
    try:
        EpisodeReplay(cfg.replay, envs.obs_shape, envs.action_size).check_fits(cfg.train.chunk_length)
        run = PixelRun(cfg, envs, device)
        if checkpoint is not None:
            run.load_state_dict(checkpoint["run"])
    except BaseException:
        envs.close()
        raise
    return run


def trim_metrics(path: Path, episode: int) -> None:
    """Drop rows logged after the checkpoint (episode > ``episode``) and any line cut short by a kill:
    the resumed run logs them again."""
    logger_trim_metrics(path, lambda row: row.get("episode", 0) <= episode)


def main(
    config_path: Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    logdir: Path | None = None,
    resume: Path | None = None,
) -> None:
    """Train the pixel agent; validate everything before the run folder is created."""
    resume = Path(resume) if resume is not None else None
    cfg = load_run_config(PixelAgentConfig, config_path, list(overrides), resume)
    check_resume_target(logdir, resume)
    checkpoint = None
    if resume is not None and (resume / CHECKPOINT_NAME).is_file():
        checkpoint = load_checkpoint(resume / CHECKPOINT_NAME, kind="pixels")
    run = prepare(cfg, checkpoint)
    try:
        logdir = prepare_logdir(Path(resume or logdir or default_logdir("pixels", cfg.env.id)), resume is not None)
        save_config(cfg, logdir / "config.yaml")  # on resume too: overrides (e.g. more episodes) stick
        if resume is not None:
            # A run killed before its first checkpoint starts over; rows past the checkpoint are redone.
            trim_metrics(logdir / "metrics.jsonl", run.episode if checkpoint else -1)
        print(f"pixel agent: {cfg.env.id} on {run.device}, logging to {logdir}", flush=True)
        logger = Logger(logdir, backend=cfg.logger, wandb_cfg=cfg.wandb, config=to_dict(cfg), resume=resume is not None)
        try:
            train_loop(run, logger, logdir)
        finally:
            logger.close()
    finally:
        run.envs.close()


def load_agent(logdir: str | Path, checkpoint: str | Path | None = None, device: str = "auto") -> PixelPolicy:
    """A trained pixel agent from a run folder, ready to act (no exploration noise unless ``act(explore=True)``).

    The returned policy's ``make_envs(num_envs=1, seed=0)`` builds the run's environment.
    """
    logdir = Path(logdir)
    if not (logdir / "config.yaml").is_file():
        raise UserError(f"{logdir} holds no run (no config.yaml)")
    cfg = load_config(PixelAgentConfig, logdir / "config.yaml")
    state = load_checkpoint(Path(checkpoint) if checkpoint else logdir / CHECKPOINT_NAME, kind="pixels")
    torch_device = resolve_device(device)
    action_size = int(np.asarray(state["run"]["replay"]["action"]).shape[1])
    image_shape = (3, cfg.env.image_size, cfg.env.image_size)
    world_model = WorldModel(cfg.model, action_size, image_shape).to(torch_device)
    world_model.load_checkpoint_state(state["run"]["world_model"])
    box = torch.ones(action_size, device=torch_device)
    generator = torch.Generator(device=torch_device).manual_seed(cfg.seed)
    planner = CEMPlanner(cfg.planner, low=-box, high=box, generator=generator)

    def make_envs(num_envs: int = 1, seed: int = 0) -> PixelEnvs:
        return make_pixel_envs(dataclasses.replace(cfg.env, num_envs=num_envs), seed=seed)

    return PixelPolicy(
        world_model, planner, exploration_noise=cfg.train.exploration_noise, generator=generator, make_envs=make_envs
    )
