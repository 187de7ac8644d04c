"""The pixel agent's config: loop sizes (``PixelTrainConfig``) and the whole run (``PixelAgentConfig``: env,
world model, replay, planner, logger), with the CPU defaults that ``python train/agent.py --obs pixels`` runs
(``configs/pixels_default.yaml`` is the same, written out)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from worldmodel.config import check
from worldmodel.data.episodes import ReplayConfig
from worldmodel.envs.pixels import PixelEnvConfig
from worldmodel.logging.logger import WandbConfig
from worldmodel.models.world_model import WorldModelConfig, check_image_shape
from worldmodel.planning.cem import PlannerConfig


@dataclass
class PixelTrainConfig:
    episodes: int = 35
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
    eval_episodes: int = 3
    """Episodes per evaluation (run num_envs at a time, or eval_envs at a time)."""
    eval_envs: int | None = None
    """Envs of evaluation's own batch, planned for in one call (e.g. eval_episodes); None: the collection envs."""
    heldout_episodes: int = 1
    """Random-action episodes kept out of training; reconstruction loss on them is heldout_recon_loss (0: off)."""
    heldout_chunks: int = 16
    """Fixed chunks drawn from the held-out episodes for heldout_recon_loss."""
    media_every: int = 5
    """Log the recon grid, the open-loop video and an evaluation video every this many episodes, and after the last."""
    checkpoint_every: int = 5
    """Save logdir/checkpoint.pt every this many episodes, and at the end."""

    def __post_init__(self) -> None:
        positive = ("episodes", "train_steps", "batch_size", "eval_every", "eval_episodes", "media_every")
        for name in (*positive, "checkpoint_every", "heldout_chunks"):
            value = getattr(self, name)
            check(value >= 1, f"train.{name} must be >= 1, got {value}")
        check(self.seed_episodes >= 1, f"train.seed_episodes must be >= 1, got {self.seed_episodes}")
        check(self.heldout_episodes >= 0, f"train.heldout_episodes must be >= 0, got {self.heldout_episodes}")
        check(self.chunk_length >= 2, f"train.chunk_length must be >= 2, got {self.chunk_length}")
        check(
            self.eval_envs is None or self.eval_envs >= 1,
            f"train.eval_envs must be >= 1 (or null for the collection envs), got {self.eval_envs}",
        )
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
    MOVED: ClassVar[dict[str, str]] = {"model.plan_sample": "planner.sample", "model.plan_compile": "planner.compile"}
    """Keys of earlier versions (still read, in files and overrides) -> where they live now."""

    agent: Literal["pixels"] = "pixels"
    """Which agent the config is for; a run folder's config.yaml says so to the CLI, sweeps and reports."""
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
        check(self.planner.dtype == "float32", "planner.dtype: the pixel agent plans in float32 (bfloat16 is the state ensemble's)")

