"""The state agent's config: loop sizes (``StateTrainConfig``) and the whole agent (``StateAgentConfig``),
loaded from YAML with command-line overrides (``configs/state_*.yaml``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar, Literal

from worldmodel.config import check
from worldmodel.envs.state import StateEnvConfig, reward_is_known, termination_is_known
from worldmodel.logging.logger import WandbConfig
from worldmodel.models.dynamics import EnsembleConfig
from worldmodel.planning.cem import PlannerConfig


@dataclass
class StateTrainConfig:
    iterations: int = 5
    """On-policy iterations; each trains the ensemble on all data, then collects with MPC."""
    train_steps: int = 1000
    """Gradient steps on all the data gathered so far, every iteration (the homework: 1500)."""
    epochs: float = 0.0
    """0: train_steps gradient steps every iteration. > 0: this many passes over all the data instead,
    ceil(epochs x transitions / batch_size) steps, so training grows with the data (seed 000: 60 epochs)."""
    batch_size: int = 512
    """Transitions per member per gradient step."""
    random_episodes: int = 8
    """Episodes of uniform random actions collected before iteration 0."""
    random_steps: int = 0
    """At least this many random-action agent steps before iteration 0: after the random_episodes, further batches
    of env.num_envs episodes until reached (bodies whose random episodes end within tens of steps). 0: off."""
    mpc_episodes: int = 4
    """Episodes collected with MPC every iteration; their returns are the iteration's AverageReturn
    unless eval_episodes > 0 (seed 000: the most recent on-policy sample)."""
    mpc_steps: int = 0
    """At least this many agent steps collected with MPC every iteration: after the mpc_episodes, further
    batches of env.num_envs episodes until reached (for bodies whose episodes end early). 0: off."""
    eval_episodes: int = 0
    """Extra MPC episodes per iteration, kept out of the data, reported instead (the homework: 10). 0: off."""
    mse_episodes: int = 1
    """Fresh random-policy episodes per iteration on which DynamicsMSE is measured."""
    keep_mse_data: bool = True
    """Add those random transitions to the data after measuring (seed 000 does)."""
    aggregate: bool = True
    """Add each iteration's collected episodes to the data (on-policy aggregation). false: the data stays
    iteration 0's random episodes, the DynamicsMSE episodes joining neither (seed 000's runs without
    aggregation, its Figs. 2-4); the env steps still count the episodes played."""
    collect_after_last: bool = True
    """Collect mpc_episodes after the last training too. The homework trains, then collects, so its last
    iteration's training is followed by evaluation only: false. Without evaluation episodes the last
    iteration then reports no return (seed 001's model-only run)."""
    checkpoint_every: int = 1
    """Save logdir/checkpoint.pt every this many iterations (and at the end, and on Ctrl-C)."""
    video_every: int = 2
    """Film one of the iteration's MPC episodes (eval_episode video, ~10 s of rendering on a CPU) every this
    many iterations (iterations n-1, 2n-1, ...) and after the last; 0: never."""

    def __post_init__(self) -> None:
        names = ("iterations", "train_steps", "batch_size", "random_episodes", "mpc_episodes", "mse_episodes")
        for name in (*names, "checkpoint_every"):
            value = getattr(self, name)
            check(value >= 1, f"train.{name} must be >= 1, got {value}")
        check(self.eval_episodes >= 0, f"train.eval_episodes must be >= 0, got {self.eval_episodes}")
        check(self.mpc_steps >= 0, f"train.mpc_steps must be >= 0, got {self.mpc_steps}")
        check(self.random_steps >= 0, f"train.random_steps must be >= 0, got {self.random_steps}")
        check(self.video_every >= 0, f"train.video_every must be >= 0, got {self.video_every}")
        check(self.epochs >= 0, f"train.epochs must be >= 0, got {self.epochs}")


@dataclass
class PolicyConfig:
    """A policy network beside the dynamics ensemble (seed 000, sections 4-6; worldmodel/agents/state_policies.py).
    Off by default: kind none builds nothing and draws no random number."""

    kind: Literal["none", "guided", "bptt", "dagger"] = "none"
    """none: MPC alone. guided: policy-guided MPC, an MLP trained every iteration to imitate MPC's executed
    actions, and the planner's candidates take its actions after their first step (seed 000 section 5). bptt: a
    GRU policy trained by backpropagating the reward through the frozen ensemble acts without planning
    (section 4). dagger: an MLP acts (with exploration noise), MPC labels the states it visited, the MLP trains
    on the labels (section 6)."""
    hidden_size: int = 64
    """Units per hidden layer (MLP) or per GRU cell (bptt; seed 000: 32)."""
    num_layers: int = 2
    """Hidden ReLU layers (MLP) or stacked GRU cells (bptt; seed 000: 2)."""
    learning_rate: float = 1e-3
    """Adam step size (seed 000's BPTT: 1e-5, and it tried up to 1e-3)."""
    train_steps: int = 500
    """Gradient steps every iteration, after the ensemble's training."""
    batch_size: int = 512
    """Labelled states (guided, dagger) or BPTT start states per gradient step."""
    horizon: int = 50
    """bptt: H, steps of each imagined segment the reward is backpropagated through (seed 000: 50)."""
    grad_clip: float = 10.0
    """Clip the policy's gradient to this global norm (BPTT's gradients through long rollouts explode); 0: off."""
    noise: float = 0.1
    """bptt, dagger: std of the Gaussian noise added to the policy's actions in the collected episodes, as a
    fraction of the action box's half-range (the evaluation episodes act without it); 0: none."""
    label_batch: int = 100
    """dagger: states MPC labels in one planner call."""

    def __post_init__(self) -> None:
        names = ("hidden_size", "num_layers", "train_steps", "batch_size", "horizon", "label_batch")
        for name in names:
            value = getattr(self, name)
            check(value >= 1, f"policy.{name} must be >= 1, got {value}")
        check(self.learning_rate > 0, f"policy.learning_rate must be > 0, got {self.learning_rate}")
        check(self.grad_clip >= 0, f"policy.grad_clip must be >= 0, got {self.grad_clip}")
        check(self.noise >= 0, f"policy.noise must be >= 0, got {self.noise}")


def cpu_default_env() -> StateEnvConfig:
    return StateEnvConfig(id="HalfCheetah-v5", num_envs=4, episode_length=1000)


def cpu_default_model() -> EnsembleConfig:
    return EnsembleConfig(ensemble_size=5, hidden_size=128, num_layers=2)


def cpu_default_planner() -> PlannerConfig:
    # The homework's CEM with a quarter of its candidates, a shorter horizon and fewer refits, so that
    # ~25,000 MPC steps fit in minutes on 2 cores; warm-started from the previous plan (see RESULTS.md).
    return PlannerConfig(kind="cem", horizon=12, candidates=250, iterations=3, elites=25, warm_start=True)


@dataclass
class StateAgentConfig:
    MOVED: ClassVar[dict[str, str]] = {
        "model.train_steps": "train.train_steps",
        "model.batch_size": "train.batch_size",
        "model.plan_dtype": "planner.dtype",
    }
    """Keys of earlier versions (still read, in files and overrides) -> where they live now."""

    agent: Literal["state"] = "state"
    """Which agent the config is for; a run folder's config.yaml says so to the CLI, sweeps and reports."""
    seed: int = 0
    """Seeds python, numpy, torch, the planner and the environments."""
    device: str = "auto"
    """auto (cuda when available), cpu or cuda."""
    env: StateEnvConfig = field(default_factory=cpu_default_env)
    """The environments, stepped num_envs at a time."""
    model: EnsembleConfig = field(default_factory=cpu_default_model)
    """The dynamics ensemble (homework: 5 x 2x250)."""
    planner: PlannerConfig = field(default_factory=cpu_default_planner)
    """MPC (homework: 1000 candidates, horizon 15, CEM 4 iterations, 5 elites)."""
    train: StateTrainConfig = field(default_factory=StateTrainConfig)
    """Loop sizes: iterations, gradient steps and episodes per phase (homework: 1500 steps of 512)."""
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    """A policy network guiding MPC, or acting instead of it (seed 000's extensions); kind none: off."""
    logger: Literal["wandb", "none"] = "wandb"
    """wandb (offline by default) and metrics.jsonl, or metrics.jsonl only."""
    wandb: WandbConfig = field(default_factory=WandbConfig)
    """wandb project, run name, tags and mode."""

    def __post_init__(self) -> None:
        check(self.device in ("auto", "cpu", "cuda"), f"device must be auto, cpu or cuda; got {self.device!r}")
        check(
            not (self.planner.sample or self.planner.compile),
            "planner.sample and planner.compile are the pixel agent's (its latent rollouts); the state agent has neither",
        )
        resolve_known_or_learned(self.model, self.env)


def resolve_known_or_learned(model: EnsembleConfig, env: StateEnvConfig) -> None:
    """model.reward / model.termination "auto" -> "known" where the project has the env's function, else "learned";
    "known" for an env without one is a config error."""
    knowns = {"reward": reward_is_known(env.id, action_repeat=env.action_repeat), "termination": termination_is_known(env.id)}
    for name, known in knowns.items():
        if getattr(model, name) == "auto":
            setattr(model, name, "known" if known else "learned")
        check(
            getattr(model, name) != "known" or known,
            f"model.{name}=known: the project has no {name} function for {env.id}; use model.{name}=learned",
        )
