"""The state agent: an ensemble of MLP dynamics models on the simulator state, the env's reward and
termination (known functions of the state, or learned by the ensemble), and MPC with CEM or random
shooting (seeds 000, 001). Any gymnasium MuJoCo body or dm_control task from states (``worldmodel.envs.state``).

    python train/agent.py --obs state                                        # the CPU default, ~7 min on 2 cores
    python train/agent.py --obs state --config configs/state_smoke.yaml --logdir /tmp/smoke
    python train/agent.py --obs state --config configs/state_halfcheetah_cem.yaml planner.horizon=1
    python train/agent.py --obs state --resume /tmp/smoke                    # continue from its checkpoint

The loop: iteration 0 starts from random-policy data (``collect_random``); every
iteration then trains the ensemble on all the data (``train_dynamics``), collects episodes with
MPC in all N envs at once, planning for them in one batched call per step (``collect_mpc``),
measures the model on fresh random-policy transitions (``evaluate_dynamics_mse``) and logs one
row. Everything a run needs to continue lives in ``StateRun``; the shared loop
(``worldmodel.runner``, driven by ``STATE_SPEC``) checkpoints it after every iteration and on Ctrl-C.

With ``policy.kind`` other than none a policy network joins the loop (seed 000's extensions,
``worldmodel.agents.state_policies``): it trains after the ensemble every iteration, then guides MPC's
imagined rollouts (guided) or acts in the envs instead of MPC (bptt, dagger; MPC labels dagger's states).
"""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel import runner
from worldmodel.agents.common import saved_policy
from worldmodel.agents.policies import NetworkPolicy, StatePolicy
from worldmodel.agents.state_policies import make_learner, record_labels, train_policy
from worldmodel.agents.state_config import StateAgentConfig, StateTrainConfig  # noqa: F401  (re-exported)
from worldmodel.data.transitions import TransitionBuffer
from worldmodel.envs.state import StateEnvSpec, make_state_envs, state_env_spec
from worldmodel.envs.state_episodes import Episodes, random_policy, run_episodes
from worldmodel.errors import UserError
from worldmodel.logging.logger import Logger
from worldmodel.logging.media import save_loss_curve
from worldmodel.logging.progress import progress
from worldmodel.logging.rollout import replay_state_episode
from worldmodel.models.dynamics import DynamicsEnsemble
from worldmodel.planning import Planner, make_planner


# ---- run state ------------------------------------------------------------------------------


class StateRun(runner.RunState):
    """All the state of a training run: ensemble + optimizer (normalisers inside), data, RNGs, counters."""

    counters = ("iteration", "env_steps", "random_return", "elapsed")

    def __init__(self, cfg: StateAgentConfig, spec: StateEnvSpec, envs, device: torch.device) -> None:
        super().__init__(cfg, envs, device)
        self.spec = spec
        self.model = build_model(cfg, spec, device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.model.learning_rate)
        self.buffer = TransitionBuffer(spec.obs_size, spec.action_size, device=device)
        self.planner = build_planner(cfg, spec, device, self.generator)
        self.policy = build_policy(cfg, spec, self.model, self.planner)
        self.learner = make_learner(cfg.policy, spec, device)  # None for policy.kind none
        self.iteration = 0  # iterations completed
        self.env_steps = 0
        self.random_return: float | None = None  # mean return of the iteration-0 random episodes

    def payload(self) -> dict[str, Any]:
        policy = {} if self.learner is None else {"policy": self.learner.state_dict()}
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "buffer": self.buffer.state_dict(),
            **policy,
        }

    def load_payload(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.buffer.load_state_dict(state["buffer"])
        if self.learner is not None:
            self.learner.load_state_dict(state["policy"])
            self.policy.guide = self.learner.guide()

    def policy_state(self) -> dict[str, Any]:
        sizes = {"obs_size": self.spec.obs_size, "action_size": self.spec.action_size}
        policy = {} if self.learner is None else {"policy": self.learner.policy_file_state()}
        return {"sizes": sizes, "weights": self.model.state_dict(), **policy}  # the normalisers are buffers of the model


def build_model(cfg: StateAgentConfig, spec: StateEnvSpec, device: torch.device) -> DynamicsEnsemble:
    return DynamicsEnsemble(
        cfg.model,
        obs_size=spec.obs_size,
        action_size=spec.action_size,
        model_input_dims=spec.model_input_dims,
        plan_dtype=cfg.planner.dtype,
        learn_reward=cfg.model.reward == "learned",
        learn_termination=cfg.model.termination == "learned",
    ).to(device)


def build_planner(
    cfg: StateAgentConfig, spec: StateEnvSpec, device: torch.device, generator: torch.Generator
) -> Planner:
    low = torch.tensor(spec.action_low, dtype=torch.float32, device=device)  # (A,)
    high = torch.tensor(spec.action_high, dtype=torch.float32, device=device)  # (A,)
    return make_planner(cfg.planner, low=low, high=high, generator=generator)


def build_policy(
    cfg: StateAgentConfig, spec: StateEnvSpec, model: DynamicsEnsemble, planner: Planner, **kwargs
) -> StatePolicy:
    """MPC with the env's known functions where the config says known, the model's learned heads elsewhere."""
    reward_fn = spec.reward_fn if cfg.model.reward == "known" else None
    known_end = cfg.model.termination == "known" and spec.terminates
    termination_fn = spec.termination_fn if known_end else None  # known and never: rollouts never end
    return StatePolicy(model, planner, reward_fn=reward_fn, termination_fn=termination_fn, **kwargs)


# ---- the loop -------------------------------------------------------------------------------


def collect_random(run: StateRun) -> None:
    """Iteration 0's data: random-policy episodes (added whole, so a Ctrl-C here leaves no half of them)."""
    policy = random_policy(run.spec, run.rng)
    episodes = run_episodes(run.envs, policy, run.cfg.train.random_episodes, run.rng, "random")
    episodes = collect_until(run, episodes, run.cfg.train.random_steps, "random", policy)
    add_data(run, episodes)
    run.random_return = float(episodes.returns.mean())


def add_data(run: StateRun, episodes: Episodes, keep: bool = True) -> None:
    """Episodes join the data (unless not ``keep``); env steps count the action repeats (agent steps x
    env.action_repeat) of every episode played."""
    if keep:
        episodes.add_to(run.buffer)
    run.env_steps += episodes.steps * run.cfg.env.action_repeat


def train_dynamics(run: StateRun) -> np.ndarray:
    """Refit the normalisers, then ``train.train_steps`` Adam steps (or ``train.epochs`` passes) on all the data
    -> loss per step."""
    cfg, E = run.cfg.train, run.cfg.model.ensemble_size
    data = run.buffer.all()
    run.model.fit_normalizers(data["obs"], data["actions"], data["next_obs"], data["rewards"])
    steps = cfg.train_steps if cfg.epochs == 0 else max(1, math.ceil(cfg.epochs * len(run.buffer) / cfg.batch_size))
    losses = []
    for _ in progress(range(steps), desc="train dynamics", unit="step"):
        batch = run.buffer.sample(E, cfg.batch_size, run.generator)  # each field (E, B, ...)
        total, metrics = run.model.loss(
            batch["obs"], batch["actions"], batch["next_obs"], batch["rewards"], batch["terminated"]
        )
        run.optimizer.zero_grad(set_to_none=True)
        total.backward()
        run.optimizer.step()
        losses.append(metrics["model/loss"])
    return torch.stack(losses).cpu().numpy()  # one host copy for all the steps


def collect_mpc(run: StateRun, episodes: int, desc: str, actor: NetworkPolicy | None = None) -> Episodes:
    """MPC episodes (or ``actor``'s, a policy network's) in all envs at once; the caller decides whether they
    join the data."""
    if episodes == 0:
        return Episodes.empty(run.spec.obs_size, run.spec.action_size)
    # The policy is reset before every batch of episodes, not once: a warm start must not carry a plan
    # from one batch's last step to the next batch's first.
    policy = run.policy if actor is None else actor
    return run_episodes(run.envs, policy.act, episodes, run.rng, desc, reset=policy.reset, keep=policy.keep)


def collect_until(run: StateRun, collected: Episodes, steps: int, desc: str, policy=None, actor=None) -> Episodes:
    """``collected`` and, while it holds fewer than ``steps`` steps, batches of env.num_envs more episodes with
    ``policy`` (a function of the observations; None: MPC, or ``actor``)."""
    parts, B = [collected], run.cfg.env.num_envs
    while sum(part.steps for part in parts) < steps:
        more = f"{desc} (to {steps} steps)"
        by_policy = policy is not None
        parts.append(run_episodes(run.envs, policy, B, run.rng, more) if by_policy else collect_mpc(run, B, more, actor))
    return Episodes.concatenate(parts)


def collect_iteration(run: StateRun, num_collect: int, desc: str) -> tuple[Episodes, Episodes, float]:
    """An iteration's episodes: the ``num_collect`` (or more, to train.mpc_steps) that join the data and the
    evaluation episodes that don't, and the milliseconds per ``act`` call (one step of all the envs playing).
    MPC plays both in the same batched calls; a policy network (bptt, dagger) plays the first with exploration
    noise and the others without."""
    train, mpc = run.cfg.train, run.policy
    if run.learner is None or not run.learner.acts:
        collected, evaluated = collect_mpc(run, num_collect + train.eval_episodes, desc).split(num_collect)
        if num_collect:
            collected = collect_until(run, collected, train.mpc_steps, desc)
        return collected, evaluated, 1000 * mpc.plan_seconds / max(mpc.plan_calls, 1)
    net, desc = run.learner.net, desc.replace("MPC", run.cfg.policy.kind)
    explore, greedy = NetworkPolicy(net, noise=run.cfg.policy.noise, generator=run.generator), NetworkPolicy(net)
    collected = collect_mpc(run, num_collect, desc, explore)
    if num_collect:
        collected = collect_until(run, collected, train.mpc_steps, desc, actor=explore)
    evaluated = collect_mpc(run, train.eval_episodes, f"{desc} evaluation", greedy)
    seconds, calls = explore.act_seconds + greedy.act_seconds, explore.act_calls + greedy.act_calls
    return collected, evaluated, 1000 * seconds / max(calls, 1)


@torch.no_grad()
def evaluate_dynamics_mse(run: StateRun) -> float:
    """Unnormalised next-state MSE, averaged over members, on fresh random-policy transitions
    the model has not trained on (seed 000); they join the data afterwards if keep_mse_data (and aggregate)."""
    policy = random_policy(run.spec, run.rng)
    episodes = run_episodes(run.envs, policy, run.cfg.train.mse_episodes, run.rng, "fresh random")
    E, n = run.model.ensemble_size, episodes.steps
    obs = torch.as_tensor(episodes.obs, device=run.device).expand(E, n, -1)  # (E, n, S)
    actions = torch.as_tensor(episodes.actions, device=run.device).expand(E, n, -1)  # (E, n, A)
    next_obs = torch.as_tensor(episodes.next_obs, device=run.device)  # (n, S), broadcast over members
    mse = float((run.model.predict(obs, actions) - next_obs).square().mean())
    if run.cfg.train.keep_mse_data and run.cfg.train.aggregate:
        add_data(run, episodes)
    return mse


def return_stats(returns: np.ndarray) -> dict[str, float]:
    """AverageReturn, StdReturn, MinimumReturn, MaximumReturn; nothing when no episode was played."""
    if returns.size == 0:
        return {}
    return {
        "AverageReturn": float(returns.mean()),
        "StdReturn": float(returns.std()),
        "MinimumReturn": float(returns.min()),
        "MaximumReturn": float(returns.max()),
    }


def log_eval_video(run: StateRun, logger: Logger, episodes: Episodes) -> float | None:
    """The first of this iteration's reported MPC episodes, replayed from its states in a single env,
    filmed and logged as ``eval_episode`` (no extra planning) -> its return. None, with a note, for an env whose
    observation cannot be replayed as simulator states (Ant-v5 without x, y; dm_control)."""
    first = episodes.episode(0)
    envs = make_state_envs(dataclasses.replace(run.cfg.env, num_envs=1))
    try:
        rollout = replay_state_episode(envs, first.obs, first.rewards)
    except UserError as error:
        print(f"no eval_episode video for {run.cfg.env.id}: {error}", flush=True)
        return None
    finally:
        envs.close()
    logger.video("eval_episode", rollout.frames, step=run.iteration, fps=rollout.fps)
    return rollout.episode_return


def iterate(run: StateRun, logger: Logger, logdir: Path) -> dict[str, Any]:
    """One iteration: train on all data, act with MPC (the episodes that join the data and the
    evaluation episodes that don't, planned for in the same batched calls), measure the model, log one row."""
    train = run.cfg.train
    iteration_started = started = time.perf_counter()
    losses = train_dynamics(run)
    train_time = time.perf_counter() - started
    curve = logdir / f"itr_{run.iteration}_loss_curve.png"
    save_loss_curve(losses, curve, run.iteration)
    logger.image("model/loss_curve", curve, step=run.iteration)
    policy_row = policy_iteration_start(run)

    last = run.iteration + 1 == train.iterations
    num_collect = train.mpc_episodes if (train.collect_after_last or not last) else 0
    started = time.perf_counter()
    run.policy.plan_seconds, run.policy.plan_calls = 0.0, 0
    collected, evaluated, act_ms = collect_iteration(run, num_collect, f"iteration {run.iteration} MPC")
    collect_time = time.perf_counter() - started
    acted_steps = collected.steps + evaluated.steps
    add_data(run, collected, keep=train.aggregate)
    if run.learner is not None and run.learner.imitates:
        started = time.perf_counter()
        record_labels(run, collected.obs, collected.actions)
        policy_row["policy/label_time"] = time.perf_counter() - started
    mse = evaluate_dynamics_mse(run)

    reported = evaluated if train.eval_episodes > 0 else collected
    row: dict[str, Any] = {"Iteration": run.iteration, **return_stats(reported.returns), "DynamicsMSE": mse}
    # env_steps (the pixel agent's name) and EnvSteps (the seeds'): every row of both agents has env_steps.
    row.update(env_steps=run.env_steps, EnvSteps=run.env_steps, TrainTime=train_time, CollectTime=collect_time)
    row.update({"RandomReturn": run.random_return, "model/loss": float(losses[-1]), **policy_row})
    if acted_steps:
        if run.policy.plan_calls:
            row["planner/ms"] = 1000 * run.policy.plan_seconds / run.policy.plan_calls
        row["act_ms"] = act_ms
        row["steps_per_second"] = acted_steps / collect_time
        row["EpisodeLength"] = float(reported.lengths.mean()) if len(reported.lengths) else None
    if train.video_every and ((run.iteration + 1) % train.video_every == 0 or last):
        if reported.steps:
            video_return = log_eval_video(run, logger, reported)
            if video_return is not None:
                row["eval_video_return"] = video_return
    run.elapsed += time.perf_counter() - iteration_started
    row["wall_time"] = run.elapsed
    logger.log(row, step=run.iteration)
    print(summary_line(row), flush=True)
    run.iteration += 1
    return row


def policy_iteration_start(run: StateRun) -> dict[str, Any]:
    """The policy network's training of this iteration, after the ensemble's -> its metrics row entries."""
    if run.learner is None:
        return {}
    started = time.perf_counter()
    row = train_policy(run)
    return {**row, "policy/train_time": time.perf_counter() - started}


def summary_line(row: dict[str, Any]) -> str:
    keys = ["Iteration", "AverageReturn", "StdReturn", "RandomReturn", "DynamicsMSE", "model/loss", "EnvSteps"]
    keys += ["TrainTime", "CollectTime"]
    return " ".join(
        f"{k}={row[k]:.4g}" if isinstance(row[k], float) else f"{k}={row[k]}" for k in keys if row.get(k) is not None
    )


def warm_up(run: StateRun) -> bool:
    """Iteration 0's random data, unless a resumed run has it already."""
    if run.random_return is not None:
        return False
    collect_random(run)
    print(f"random policy: AverageReturn={run.random_return:.4g} over {run.env_steps} steps", flush=True)
    return True


# ---- entry points ---------------------------------------------------------------------------


class StateAgent(runner.Agent[StateAgentConfig, StateRun]):
    """The state agent as the run loop sees it: iterations of train, act, measure."""

    kind = "state"
    config_class = StateAgentConfig

    def make_envs(self, cfg: StateAgentConfig, checkpoint: dict[str, Any] | None):
        state_env_spec(cfg.env.id, action_repeat=cfg.env.action_repeat)  # an unknown env id is one clear error before anything is built
        return make_state_envs(cfg.env)

    def build_run(self, cfg: StateAgentConfig, envs, device: torch.device) -> StateRun:
        return StateRun(cfg, state_env_spec(cfg.env.id, action_repeat=cfg.env.action_repeat), envs, device)

    def warm_up(self, run: StateRun) -> bool:
        return warm_up(run)

    def iterate(self, run: StateRun, logger: Logger, logdir: Path) -> None:
        iterate(run, logger, logdir)

    def progress(self, run: StateRun) -> int:
        return run.iteration

    def length(self, cfg: StateAgentConfig) -> int:
        return cfg.train.iterations

    def row_progress(self, row: dict[str, Any]) -> int:
        return row.get("Iteration", 0) + 1  # the row of iteration i is logged as i becomes done

    def describe(self, run: StateRun) -> str:
        return f"state agent: {run.cfg.env.id} x{run.cfg.env.num_envs} on {run.device}"


STATE_SPEC = StateAgent()
prepare = STATE_SPEC.prepare
trim_metrics = STATE_SPEC.trim_metrics


def main(
    config_path: Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    logdir: Path | None = None,
    resume: Path | None = None,
) -> Path:
    """Train the state agent (or continue it with ``resume``) -> the run folder."""
    return runner.train(STATE_SPEC, config_path, overrides, logdir, resume)


def load_agent(
    run: str | Path, policy_file: str | Path | None = None, device: str = "auto"
) -> StatePolicy | NetworkPolicy:
    """A trained state agent from a run folder's ``policy.pt`` (or the ``policy_file`` given, which may lie
    anywhere), ready to act: MPC (guided by its policy network for policy.kind guided), or the policy network
    alone, without planning (bptt, dagger). Reads nothing else: neither the data nor the training checkpoint.

    The returned policy's ``make_env(num_envs=1, render_mode=None)`` builds the run's vector env
    (``render_mode="rgb_array"`` for videos).
    """
    saved = saved_policy(run, policy_file, "state", StateAgentConfig, device)
    cfg, sizes, weights, torch_device, generator, saved_net = saved
    spec = state_env_spec(cfg.env.id, action_repeat=cfg.env.action_repeat)
    if (spec.obs_size, spec.action_size) != (sizes["obs_size"], sizes["action_size"]):
        raise UserError(
            f"the policy's sizes {sizes} do not fit {cfg.env.id} (obs {spec.obs_size}, action {spec.action_size})"
        )
    model = build_model(cfg, spec, torch_device)
    model.load_state_dict(weights)
    planner = build_planner(cfg, spec, torch_device, generator)

    def make_env(num_envs: int = 1, render_mode: str | None = None):
        return make_state_envs(dataclasses.replace(cfg.env, num_envs=num_envs), render_mode=render_mode)

    learner = make_learner(cfg.policy, spec, torch_device)
    if learner is None:
        return build_policy(cfg, spec, model, planner, make_env=make_env)
    learner.net.load_state_dict(saved_net["weights"])
    learner.updates = saved_net["updates"]
    if learner.acts:
        return NetworkPolicy(learner.net, make_env=make_env)
    return build_policy(cfg, spec, model, planner, make_env=make_env, guide=learner.guide())
