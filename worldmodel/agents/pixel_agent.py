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
states, counters); the shared loop (``worldmodel.runner``, driven by ``PIXEL_SPEC``) checkpoints it
atomically after the seed episodes, every ``checkpoint_every`` episodes, at the end and on Ctrl-C.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel import runner
from worldmodel.agents.common import saved_policy
from worldmodel.agents.pixel_config import PixelAgentConfig
from worldmodel.agents.policies import PixelPolicy
from worldmodel.data.device_replay import DeviceReplay
from worldmodel.data.episodes import EpisodeReplay
from worldmodel.envs.pixel_episodes import Episodes, random_actions, run_episodes
from worldmodel.envs.pixel_factory import make_pixel_envs
from worldmodel.envs.pixels import PixelEnvs
from worldmodel.logging.logger import Logger
from worldmodel.logging.media import episode_video, openl_video, recon_grid
from worldmodel.logging.progress import progress
from worldmodel.models.world_model import WorldModel, batch_to_torch
from worldmodel.planning import make_planner
from worldmodel.runner import crossed

HELDOUT_SEED_OFFSET = 10_007  # the held-out chunks are drawn from their own, fixed stream
EVAL_SEED_OFFSET = 500_009  # evaluation's own envs (train.eval_envs) are seeded apart from the collection envs
OPENL_CONTEXT = 5  # frames filtered by the posterior before the open-loop prior takes over
MEDIA_SEQUENCES = 4  # sequences side by side in the open-loop video
RECON_FRAMES = 8  # frames in the reconstruction grid
MEDIA_SCALE = 2  # 64x64 frames are tiny in a browser


# ---- run state ------------------------------------------------------------------------------


class PixelRun(runner.RunState):
    """All the state of a training run: world model + optimizer, replay, held-out episodes, RNGs, counters."""

    counters = ("episode", "env_steps", "train_steps", "elapsed")

    def __init__(self, cfg: PixelAgentConfig, envs: PixelEnvs, device: torch.device) -> None:
        super().__init__(cfg, envs, device)
        image_shape = envs.obs_shape
        self.world_model = WorldModel(cfg.model, envs.action_size, image_shape).to(device)
        self.replay = EpisodeReplay(cfg.replay, image_shape, envs.action_size)
        self.heldout = EpisodeReplay(cfg.replay, image_shape, envs.action_size)
        # On a GPU the frames are mirrored there and chunks gathered there (see DeviceReplay).
        self.device_replay = DeviceReplay(self.replay, device) if device.type == "cuda" else None
        box = torch.ones(envs.action_size, device=device)
        self.planner = make_planner(cfg.planner, low=-box, high=box, generator=self.generator)
        self.policy = PixelPolicy(
            self.world_model, self.planner, exploration_noise=cfg.train.exploration_noise, generator=self.generator
        )
        self.episode = 0  # training episodes collected (seed ones included)
        self.env_steps = 0  # environment steps of training episodes, action repeat included
        self.train_steps = 0  # gradient steps
        self.eval_envs: PixelEnvs | None = None  # evaluation's own batch (train.eval_envs), made when first used
        self._replay_states: dict[str, dict[str, Any]] = {}  # a checkpoint's episode counts, read in attach

    def close(self) -> None:
        super().close()
        if self.eval_envs is not None:
            self.eval_envs.close()

    def payload(self) -> dict[str, Any]:
        # The episodes themselves are files in the run folder, written once as they come (see attach).
        return {
            "world_model": self.world_model.checkpoint_state(),
            "replay": self.replay.disk_state(),
            "heldout": self.heldout.disk_state(),
        }

    def load_payload(self, state: dict[str, Any]) -> None:
        self.world_model.load_checkpoint_state(state["world_model"])
        for name in ("replay", "heldout"):
            if "obs" in state[name]:  # a checkpoint from before the replay lived on disk: its steps, in memory
                getattr(self, name).load_state_dict(state[name])
            else:
                self._replay_states[name] = state[name]

    def attach(self, logdir: Path) -> None:
        """Keep the replay and the held-out episodes in ``logdir/replay`` and ``logdir/heldout``; a resumed
        run first reads back the episodes its checkpoint counted."""
        for name in ("replay", "heldout"):
            getattr(self, name).keep_on_disk(logdir / name, self._replay_states.get(name))

    def policy_state(self) -> dict[str, Any]:
        sizes = {"action_size": self.envs.action_size, "image_shape": list(self.envs.obs_shape)}
        return {"sizes": sizes, "weights": self.world_model.state_dict()}


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
    for _ in progress(range(train.train_steps), desc="train", unit="step"):
        if run.device_replay is not None:
            batch = run.device_replay.sample(train.batch_size, train.chunk_length, run.rng)
        else:
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


def evaluation_envs(run: PixelRun) -> PixelEnvs:
    """The envs evaluation plays in: the collection envs, or its own batch of ``train.eval_envs``."""
    count = run.cfg.train.eval_envs
    if count is None or count == run.envs.num_envs:
        return run.envs
    if run.eval_envs is None:
        seed = run.cfg.seed + EVAL_SEED_OFFSET + 1000 * run.episode  # a resumed run's are seeded anew
        run.eval_envs = make_pixel_envs(dataclasses.replace(run.cfg.env, num_envs=count), seed=seed)
    return run.eval_envs


def evaluate(run: PixelRun) -> tuple[float, np.ndarray]:
    """Planner without noise on ``eval_episodes`` episodes -> (mean return, frames of the first (T, C, H, W))."""
    returns: list[float] = []
    first_frames = None
    envs = evaluation_envs(run)
    while len(returns) < run.cfg.train.eval_episodes:
        run.policy.reset()
        episodes = run_episodes(envs, lambda obs: run.policy.act(obs, explore=False), desc="evaluate")
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


def iterate(run: PixelRun, logger: Logger, logdir: Path | None = None) -> None:
    """One iteration: train, collect, maybe evaluate and log media, log the row."""
    train = run.cfg.train
    started, steps_before, episode_before = time.perf_counter(), run.env_steps, run.episode
    run.policy.plan_seconds, run.policy.plan_calls = 0.0, 0
    clock = PhaseClock()
    metrics = update_model(run)
    clock.lap("train")
    collected = collect(run)
    clock.lap("collect")
    row: dict[str, Any] = {"episode": run.episode, "env_steps": run.env_steps, "train_steps": run.train_steps}
    row.update(metrics)
    row["train_return"] = float(collected.returns.mean())
    row["plan_ms"] = 1000 * run.policy.plan_seconds / max(run.policy.plan_calls, 1)
    row["time_collect_plan_s"] = run.policy.plan_seconds
    heldout = heldout_recon_loss(run)
    if heldout is not None:
        row["heldout_recon_loss"] = heldout
    last = run.episode >= train.episodes
    media_due = last or crossed(episode_before, run.episode, train.media_every)
    eval_frames = None
    clock.lap("heldout")
    if media_due or crossed(episode_before, run.episode, train.eval_every):
        row["AverageReturn"], eval_frames = evaluate(run)
    clock.lap("eval")
    if media_due:
        log_media(run, logger, eval_frames)
    clock.lap("media")
    row.update(clock.row())
    seconds = time.perf_counter() - started
    run.elapsed += seconds
    row["wall_time"] = run.elapsed
    row["fps"] = (run.env_steps - steps_before) / seconds
    logger.log(row, step=run.env_steps)
    print(summary_line(row), flush=True)


class PhaseClock:
    """Seconds spent in each phase of an iteration, as ``time_<phase>_s`` row keys (where the wall time goes)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.seconds: dict[str, float] = {}

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] = self.seconds.get(phase, 0.0) + now - self.last
        self.last = now

    def row(self) -> dict[str, float]:
        return {f"time_{phase}_s": seconds for phase, seconds in self.seconds.items()}


def summary_line(row: dict[str, Any]) -> str:
    keys = ["episode", "env_steps", "recon_loss", "heldout_recon_loss", "kl_loss", "train_return", "AverageReturn"]
    parts = [f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys if k in row]
    return " ".join(parts)


def warm_up(run: PixelRun) -> bool:
    """The held-out and seed episodes; True when the seed episodes were collected now."""
    unseeded = run.episode < run.cfg.train.seed_episodes
    collect_seed_episodes(run)
    return unseeded


# ---- entry points ---------------------------------------------------------------------------


class PixelAgent(runner.Agent[PixelAgentConfig, PixelRun]):
    """The pixel agent as the run loop sees it: episodes of train, collect, sometimes evaluate."""

    kind = "pixels"
    config_class = PixelAgentConfig
    unit = "episodes"
    checkpoint_after_warm_up = True  # seed episodes of 1000 frames take long

    def make_envs(self, cfg: PixelAgentConfig, checkpoint: dict[str, Any] | None) -> PixelEnvs:
        # Envs of a resumed run get fresh seeds, so they do not replay the first episodes again.
        episode = checkpoint["run"]["counters"]["episode"] if checkpoint else 0
        return make_pixel_envs(cfg.env, seed=cfg.seed + 1000 * episode)

    def build_run(self, cfg: PixelAgentConfig, envs: PixelEnvs, device: torch.device) -> PixelRun:
        EpisodeReplay(cfg.replay, envs.obs_shape, envs.action_size).check_fits(cfg.train.chunk_length)
        return PixelRun(cfg, envs, device)

    def warm_up(self, run: PixelRun) -> bool:
        return warm_up(run)

    def iterate(self, run: PixelRun, logger: Logger, logdir: Path) -> None:
        iterate(run, logger, logdir)

    def progress(self, run: PixelRun) -> int:
        return run.episode

    def length(self, cfg: PixelAgentConfig) -> int:
        return cfg.train.episodes

    def row_progress(self, row: dict[str, Any]) -> int:
        return row.get("episode", 0)  # a row is logged with the episodes collected so far

    def describe(self, run: PixelRun) -> str:
        return f"pixel agent: {run.cfg.env.id} (action repeat {run.envs.action_repeat}) on {run.device}"


PIXEL_SPEC = PixelAgent()
prepare = PIXEL_SPEC.prepare
trim_metrics = PIXEL_SPEC.trim_metrics


def main(
    config_path: Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    logdir: Path | None = None,
    resume: Path | None = None,
) -> Path:
    """Train the pixel agent (or continue it with ``resume``) -> the run folder."""
    return runner.train(PIXEL_SPEC, config_path, overrides, logdir, resume)


def load_agent(
    run: str | Path,
    policy_file: str | Path | None = None,
    device: str = "auto",
    overrides: list[str] | tuple[str, ...] = (),
) -> PixelPolicy:
    """A trained pixel agent from a run folder's ``policy.pt`` (or the ``policy_file`` given, which may lie
    anywhere), ready to act (no exploration noise unless ``act(explore=True)``). Reads nothing else: neither
    the replay nor the training checkpoint.

    ``overrides`` (``key.sub=value``) change the run's config before the agent is built, e.g. a larger
    planner. The returned policy's ``make_envs(num_envs=1, seed=0)`` builds the run's environment.
    """
    cfg, sizes, weights, torch_device, generator, _ = saved_policy(
        run, policy_file, "pixels", PixelAgentConfig, device, overrides
    )
    action_size, image_shape = int(sizes["action_size"]), tuple(sizes["image_shape"])
    world_model = WorldModel(cfg.model, action_size, image_shape).to(torch_device)
    world_model.load_state_dict(weights)
    box = torch.ones(action_size, device=torch_device)
    planner = make_planner(cfg.planner, low=-box, high=box, generator=generator)

    def make_envs(num_envs: int = 1, seed: int = 0) -> PixelEnvs:
        return make_pixel_envs(dataclasses.replace(cfg.env, num_envs=num_envs), seed=seed)

    return PixelPolicy(
        world_model, planner, exploration_noise=cfg.train.exploration_noise, generator=generator, make_envs=make_envs
    )
