"""The state agent's policy network and how it learns (``policy.kind``; seed 000, CS294-112 hw4 2017, sections 4-6).

Every iteration, after the ensemble's training (``train_policy``):

- ``guided`` (section 5): the MLP imitates MPC's executed actions, aggregated over the iterations
  (``imitation_step``); MPC then plans with it as the ``guide`` of its imagined rollouts: each candidate's first
  action is sampled as before, every later one is the policy's on the imagined state
  (``DynamicsEnsemble.imagine_returns``). Until it has trained once (iteration 0: no MPC episodes yet) MPC plans
  unguided.
- ``bptt`` (section 4): the GRU policy maximises the known reward of H-step imagined segments that start at states
  of the data, through the frozen ensemble (``bptt_step``); it acts without planning.
- ``dagger`` (section 6): the MLP acts (with exploration noise); MPC labels the states it visited
  (``label_with_mpc``, after the episodes: ``record_labels``) and it trains on all the labels so far. Its first
  training (iteration 0) imitates MPC on the random episodes' states (seed 000's cold start).

The labels (states and the actions to imitate) live in ``PolicyLearner.labels``; the learner (network, optimiser,
labels, count of updates) is part of the run's checkpoint, and the network of ``policy.pt``.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Callable

import torch
from torch import Tensor, nn

from worldmodel.agents.state_config import PolicyConfig
from worldmodel.envs.rewards import RewardFn
from worldmodel.envs.terminations import TerminationFn
from worldmodel.models.dynamics import DynamicsEnsemble, counted_reward
from worldmodel.models.policy import PolicyNetwork

ACTING_KINDS = ("bptt", "dagger")
"""The kinds whose network acts in the envs instead of MPC."""


class LabelBuffer:
    """States (n, S) and the actions (n, A) a policy imitates, on the training device."""

    def __init__(self, obs_size: int, action_size: int, device: torch.device) -> None:
        self.obs = torch.zeros(0, obs_size, device=device)  # (n, S)
        self.actions = torch.zeros(0, action_size, device=device)  # (n, A)

    def __len__(self) -> int:
        return self.obs.shape[0]

    def add(self, obs: Tensor, actions: Tensor) -> None:
        """Append (n, S) states and their (n, A) actions."""
        assert obs.shape[0] == actions.shape[0], (obs.shape, actions.shape)
        self.obs = torch.cat([self.obs, obs.to(self.obs)])
        self.actions = torch.cat([self.actions, actions.to(self.actions)])

    def state_dict(self) -> dict[str, Tensor]:
        return {"obs": self.obs.cpu().clone(), "actions": self.actions.cpu().clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        self.obs = state["obs"].to(self.obs)
        self.actions = state["actions"].to(self.actions)


def build_network(cfg: PolicyConfig, obs_size: int, action_size: int, low: Tensor, high: Tensor) -> PolicyNetwork:
    """The config's network: a GRU for bptt, an MLP for guided and dagger."""
    return PolicyNetwork(
        obs_size=obs_size,
        action_size=action_size,
        hidden_size=cfg.hidden_size,
        num_layers=cfg.num_layers,
        recurrent=cfg.kind == "bptt",
        low=low,
        high=high,
    )


class PolicyLearner:
    """The policy network of a run with ``policy.kind`` other than none, its optimiser, its labels and the
    number of gradient steps it has taken."""

    def __init__(self, cfg: PolicyConfig, obs_size: int, action_size: int, low: Tensor, high: Tensor) -> None:
        self.cfg = cfg
        self.net = build_network(cfg, obs_size, action_size, low, high).to(low.device)
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate)
        self.labels = LabelBuffer(obs_size, action_size, low.device)
        self.updates = 0

    @property
    def acts(self) -> bool:
        """Whether the network acts in the envs (bptt, dagger) rather than guiding MPC (guided)."""
        return self.cfg.kind in ACTING_KINDS

    @property
    def imitates(self) -> bool:
        """Whether the network learns from MPC's actions (guided, dagger) rather than by BPTT."""
        return self.cfg.kind in ("guided", "dagger")

    def guide(self) -> Callable[[Tensor], Tensor] | None:
        """What MPC's imagined rollouts take their later actions from: the trained MLP of a guided run, else None."""
        return self.net.act if self.cfg.kind == "guided" and self.updates > 0 else None

    def state_dict(self) -> dict[str, Any]:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "labels": self.labels.state_dict(),
            "updates": self.updates,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.labels.load_state_dict(state["labels"])
        self.updates = state["updates"]

    def policy_file_state(self) -> dict[str, Any]:
        """What ``policy.pt`` carries of it: the network's weights (input statistics inside) and its updates."""
        return {"weights": self.net.state_dict(), "updates": self.updates}


def make_learner(cfg: PolicyConfig, spec, device: torch.device) -> PolicyLearner | None:
    """The learner of ``cfg.kind`` for the env ``spec`` (a ``StateEnvSpec``), None for kind none."""
    if cfg.kind == "none":
        return None
    low = torch.tensor(spec.action_low, dtype=torch.float32, device=device)  # (A,)
    high = torch.tensor(spec.action_high, dtype=torch.float32, device=device)  # (A,)
    return PolicyLearner(cfg, spec.obs_size, spec.action_size, low, high)


# ---- training -------------------------------------------------------------------------------


def train_policy(run) -> dict[str, float]:
    """One iteration's policy training, after the ensemble's (``run``: the state agent's ``StateRun``) -> the
    metrics row's ``policy/*`` entries (none while a guided run has nothing to imitate)."""
    learner, cfg = run.learner, run.cfg.policy
    data = run.buffer.all()
    learner.net.obs_norm.fit(data["obs"])
    if cfg.kind == "dagger" and len(learner.labels) == 0:
        learner.labels.add(data["obs"], label_with_mpc(run, data["obs"]))  # the cold start: random data's states
    if cfg.kind == "bptt":
        policy = run.policy  # the reward and termination MPC plans with
        step = lambda: bptt_step(  # noqa: E731
            learner, run.model, data["obs"], policy.reward_fn, policy.termination_fn, run.generator
        )
    elif len(learner.labels):
        step = lambda: imitation_step(learner, run.generator)  # noqa: E731
    else:
        return {}
    losses = torch.stack([step() for _ in range(cfg.train_steps)])
    learner.updates += cfg.train_steps
    run.policy.guide = learner.guide()
    labels = {"policy/labels": len(learner.labels)} if learner.imitates else {}
    return {"policy/loss": float(losses[-1]), **labels}


def apply_gradients(learner: PolicyLearner, loss: Tensor) -> None:
    learner.optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if learner.cfg.grad_clip > 0:
        nn.utils.clip_grad_norm_(learner.net.parameters(), learner.cfg.grad_clip)
    learner.optimizer.step()


def imitation_step(learner: PolicyLearner, generator: torch.Generator) -> Tensor:
    """One Adam step of the MLP towards the labels' actions (MSE on a batch of them) -> the loss, detached."""
    labels = learner.labels
    index = torch.randint(len(labels), (learner.cfg.batch_size,), device=labels.obs.device, generator=generator)
    action, _ = learner.net(labels.obs[index])  # (B, A)
    loss = (action - labels.actions[index]).square().mean()
    apply_gradients(learner, loss)
    return loss.detach()


@contextmanager
def frozen(module: nn.Module):
    """``module``'s parameters take no gradient inside (and keep their requires_grad flags after)."""
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


def bptt_step(
    learner: PolicyLearner,
    model: DynamicsEnsemble,
    obs: Tensor,
    reward_fn: RewardFn | None,
    termination_fn: TerminationFn | None,
    generator: torch.Generator,
) -> Tensor:
    """One Adam step of the policy on minus its imagined return per step, over ``policy.horizon`` steps from a
    batch of the data's states ``obs`` (n, S), through the frozen ensemble -> the loss, detached."""
    cfg = learner.cfg
    index = torch.randint(obs.shape[0], (cfg.batch_size,), device=obs.device, generator=generator)
    with frozen(model):
        returns = policy_returns(model, learner.net, obs[index], cfg.horizon, reward_fn, termination_fn)  # (E, B)
        loss = -returns.mean() / cfg.horizon
        apply_gradients(learner, loss)
    return loss.detach()


def policy_returns(
    model: DynamicsEnsemble,
    net: PolicyNetwork,
    start: Tensor,
    horizon: int,
    reward_fn: RewardFn | None,
    termination_fn: TerminationFn | None,
) -> Tensor:
    """Each member's imagined return of the policy over ``horizon`` steps from ``start`` (B, S) -> (E, B), with
    autograd: the policy acts on every member's own imagined state. The reward is ``reward_fn`` on the predicted
    states or the learned one; a rollout ends where ``termination_fn`` (or the learned head) says so, paying
    ``model.cfg.termination_penalty`` there, as in ``DynamicsEnsemble.imagine_returns``."""
    E, (B, S) = model.ensemble_size, start.shape
    state = start.expand(E, B, S)  # (E, B, S)
    hidden = None  # the GRU's (K, E*B, H), None for the MLP
    returns = start.new_zeros(E, B)  # (E, B)
    ends = termination_fn is not None or model.learn_termination
    alive = torch.ones(E, B, dtype=torch.bool, device=start.device) if ends else None  # (E, B)
    for _ in range(horizon):
        action, hidden = net(state, hidden)  # (E, B, A)
        next_state, learned_reward, end_probability = model.heads(state, action)  # (E, B, S), (E, B), (E, B)
        reward = reward_fn(state, action, next_state) if reward_fn is not None else learned_reward  # (E, B)
        if alive is None:
            returns = returns + reward
        else:
            done = termination_fn(state, action, next_state) if termination_fn is not None else end_probability > 0.5
            returns = returns + counted_reward(reward, alive, done, model.cfg.termination_penalty)
            alive = alive & ~done
        state = next_state
    return returns


# ---- labels ---------------------------------------------------------------------------------


def label_with_mpc(run, obs: Tensor) -> Tensor:
    """MPC's action for each state of ``obs`` (n, S) -> (n, A): ``policy.label_batch`` states per planner call,
    each call from a fresh plan (the states are not one episode's)."""
    mpc, batch = run.policy, run.cfg.policy.label_batch
    labels = []
    for start in range(0, obs.shape[0], batch):
        mpc.reset()
        labels.append(torch.as_tensor(mpc.act(obs[start : start + batch])))  # (b, A)
    mpc.reset()
    return torch.cat(labels).to(obs.device)


def record_labels(run, obs, actions) -> None:
    """After an iteration's collected episodes, their states (n, S) and executed actions (n, A), numpy: a guided
    run keeps MPC's actions, a dagger run has MPC label the states its policy visited."""
    learner = run.learner
    obs = torch.as_tensor(obs, dtype=torch.float32, device=run.device)
    if learner.cfg.kind == "guided":
        learner.labels.add(obs, torch.as_tensor(actions, dtype=torch.float32))
    elif learner.cfg.kind == "dagger":
        learner.labels.add(obs, label_with_mpc(run, obs))

