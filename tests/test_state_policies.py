"""The state agent's policy network (policy.kind guided, bptt, dagger; seed 000 sections 4-6): guided rollouts, the
BPTT update through the frozen ensemble, DAgger's MPC labels, tiny runs of each kind, their resume and their
policy.pt; train.aggregate and train.epochs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.agents.policies import NetworkPolicy, StatePolicy
from worldmodel.agents.state_agent import StateAgentConfig, collect_iteration, collect_random, load_agent, main
from worldmodel.agents.state_agent import prepare, train_dynamics
from worldmodel.agents.state_config import PolicyConfig
from worldmodel.agents.state_policies import PolicyLearner, bptt_step, record_labels, train_policy
from worldmodel.checkpoint import load_checkpoint
from worldmodel.config import load_config
from worldmodel.envs.rewards import half_cheetah_reward
from worldmodel.envs.state import state_env_spec
from worldmodel.errors import ConfigError
from worldmodel.models.dynamics import DynamicsEnsemble, EnsembleConfig

from resume_checks import without_timing  # tests/resume_checks.py

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "state_smoke.yaml"
SPEC = state_env_spec("HalfCheetah-v5")
S, A = SPEC.obs_size, SPEC.action_size
# state_smoke.yaml made smaller still: 2 envs x 20-step episodes, a few steps of everything.
TINY = [
    "env.episode_length=20",
    "model.hidden_size=16",
    "train.train_steps=10",
    "train.video_every=0",
    "planner.candidates=16",
    "planner.elites=4",
    "planner.horizon=3",
    "policy.hidden_size=8",
    "policy.train_steps=5",
    "policy.batch_size=16",
    "policy.horizon=4",
    "policy.label_batch=7",  # labels in calls of 7 states: the last call of a batch has fewer
    "logger=none",
]
KINDS = ("guided", "bptt", "dagger")


def random_ensemble(seed: int = 0, ensemble_size: int = 2) -> DynamicsEnsemble:
    """A HalfCheetah ensemble with random weights and normalisers fitted to random data."""
    torch.manual_seed(seed)
    model = DynamicsEnsemble(
        EnsembleConfig(ensemble_size=ensemble_size, hidden_size=16),
        obs_size=S,
        action_size=A,
        model_input_dims=SPEC.model_input_dims,
    )
    obs, actions = torch.randn(64, S), torch.rand(64, A) * 2 - 1
    model.fit_normalizers(obs, actions, obs + 0.1 * torch.randn(64, S))
    return model


def box() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.tensor(SPEC.action_low, dtype=torch.float32), torch.tensor(SPEC.action_high, dtype=torch.float32)


# ---- guided rollouts ------------------------------------------------------------------------


def hand_rollout(model: DynamicsEnsemble, obs: torch.Tensor, actions: torch.Tensor, guide) -> torch.Tensor:
    """The returns of ``imagine_returns(..., guide)`` step by step with ``predict``, one sequence and member at a
    time: its own first action, then the guide's on that member's state. (B, S), (B, N, L, A) -> (B, N)."""
    B, N, L, _ = actions.shape
    E = model.ensemble_size
    returns = torch.zeros(B, N)
    for b in range(B):
        for n in range(N):
            for e in range(E):
                state = obs[b]
                for t in range(L):
                    action = actions[b, n, 0] if t == 0 else guide(state[None, None])[0, 0]
                    # predict runs every member on its own input: member e's row is the one we follow
                    next_state = model.predict(state.expand(E, 1, S), action.expand(E, 1, A))[e, 0]
                    returns[b, n] += half_cheetah_reward(state, action, next_state) / E
                    state = next_state
    return returns


@pytest.mark.parametrize("guide_kind", ["constant", "state"])
def test_guided_rollouts_take_the_policys_actions_after_the_first_step(guide_kind):
    """imagine_returns with a guide: a stub policy (a constant c, or a function of the imagined state) gives
    every action after the first, called on each member's own imagined states (E, R, S); the first is the
    candidate's own. The returns equal a hand rollout with [a0, c, c, ...]; changing a candidate's later actions
    changes nothing, changing its first does."""
    model = random_ensemble()
    c = torch.tensor([0.5, -0.5, 0.25, 0.0, -0.25, 0.75])
    seen = []

    def guide(state: torch.Tensor) -> torch.Tensor:  # (..., S) -> (..., A)
        seen.append(tuple(state.shape))
        if guide_kind == "constant":
            return c.expand(*state.shape[:-1], A)
        return torch.tanh(state[..., 1 : A + 1])

    obs = torch.randn(2, S)  # (B, S)
    actions = torch.rand(2, 3, 4, A) * 2 - 1  # (B, N, L, A)
    guided = model.imagine_returns(obs, actions, half_cheetah_reward, guide=guide)  # (B, N)
    assert seen and all(shape == (2, 2 * 3, S) for shape in seen), seen  # (E, B*N, S): per member, per sequence
    seen.clear()
    torch.testing.assert_close(guided, hand_rollout(model, obs, actions, guide), rtol=1e-4, atol=1e-4)

    later = actions.clone()
    later[:, :, 1:] = torch.rand(2, 3, 3, A) * 2 - 1
    torch.testing.assert_close(model.imagine_returns(obs, later, half_cheetah_reward, guide=guide), guided)
    first = actions.clone()
    first[:, :, 0] = -first[:, :, 0]
    assert not torch.allclose(model.imagine_returns(obs, first, half_cheetah_reward, guide=guide), guided)
    unguided = model.imagine_returns(obs, actions, half_cheetah_reward)
    assert not torch.allclose(unguided, guided)  # without a guide the later actions are the candidates'


# ---- BPTT -------------------------------------------------------------------------------------


def test_bptt_update_reaches_the_policy_through_the_frozen_ensemble():
    """One BPTT step: the policy's gradient is non-zero and its weights move; the ensemble's weights are bit for
    bit what they were and took no gradient (the step freezes them, and leaves them trainable after)."""
    model = random_ensemble()
    learner = PolicyLearner(PolicyConfig(kind="bptt", hidden_size=8, horizon=5, batch_size=16), S, A, *box())
    assert learner.net.recurrent
    before = {name: p.detach().clone() for name, p in model.state_dict().items()}
    policy_before = [p.detach().clone() for p in learner.net.parameters()]
    loss = bptt_step(learner, model, torch.randn(40, S), half_cheetah_reward, None, torch.Generator().manual_seed(0))
    assert torch.isfinite(loss)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, before[name]), name
    assert all(p.grad is None and p.requires_grad for p in model.parameters())
    grads = [p.grad for p in learner.net.parameters()]
    assert all(g is not None for g in grads) and sum(float(g.norm()) for g in grads) > 0
    assert any(not torch.equal(p, q) for p, q in zip(learner.net.parameters(), policy_before))


def known_cheetah_model() -> DynamicsEnsemble:
    """test_state_agent's known system: x' = x + 0.005 a[0] and nothing else moves, so the HalfCheetah reward
    per step is 0.1 a[0] - 0.1 |a|^2, best at a = (0.5, 0, 0, 0, 0, 0) whatever the state."""
    model = DynamicsEnsemble(
        EnsembleConfig(ensemble_size=2, hidden_size=8), obs_size=S, action_size=A, model_input_dims=SPEC.model_input_dims
    )
    a0 = len(SPEC.model_input_dims)
    with torch.no_grad():
        first, second, last = model.mlp.layers
        for layer in model.mlp.layers:
            layer.weight.zero_()
            layer.bias.zero_()
        first.weight[:, a0, 0], first.weight[:, a0, 1] = 1.0, -1.0
        second.weight[:, 0, 0], second.weight[:, 1, 1] = 1.0, 1.0
        last.weight[:, 0, 0], last.weight[:, 1, 0] = 1.0, -1.0
        model.target_norm.std[0] = 0.005
    return model


def test_bptt_learns_the_best_action_of_a_known_model():
    """BPTT through the known model: the GRU policy's actions go to the reward's maximum (0.5, 0, ..., 0)."""
    torch.manual_seed(0)
    model = known_cheetah_model()
    cfg = PolicyConfig(kind="bptt", hidden_size=8, horizon=3, batch_size=16, learning_rate=0.03)
    learner = PolicyLearner(cfg, S, A, *box())
    data, generator = torch.randn(100, S), torch.Generator().manual_seed(0)
    for _ in range(150):
        bptt_step(learner, model, data, half_cheetah_reward, None, generator)
    actions, _ = learner.net(data[:10])  # (10, A)
    best = torch.tensor([0.5, 0, 0, 0, 0, 0]).expand(10, A)
    torch.testing.assert_close(actions, best, atol=0.05, rtol=0)


# ---- DAgger and guided labels ---------------------------------------------------------------

LABEL = np.array([0.5, -0.5, 0.25, 0.0, -0.25, 0.75], dtype=np.float32)


def run_of(kind: str, *overrides: str):
    return prepare(load_config(StateAgentConfig, SMOKE, [*TINY, f"policy.kind={kind}", *overrides]), None)


def stub_mpc(run) -> list[int]:
    """Make the run's planner plan LABEL whatever the state -> the batch sizes it is called with."""
    planned = []

    def plan(objective, batch_size):
        planned.append(batch_size)
        return torch.as_tensor(LABEL).expand(batch_size, run.cfg.planner.horizon, A)

    run.planner.plan = plan
    return planned


def test_dagger_labels_the_states_its_policy_visited_with_mpc_and_moves_toward_the_labels():
    """A stub planner whose plan is LABEL whatever the state: the policy acts (not LABEL), MPC labels exactly the
    states it visited with LABEL (7 states a call), and training on the labels brings the policy's actions on
    those states closer to LABEL."""
    run = run_of("dagger", "policy.train_steps=40", "policy.learning_rate=0.01")
    try:
        planned = stub_mpc(run)
        collect_random(run)
        collected, _, _ = collect_iteration(run, 2, "test")
        assert not np.allclose(collected.actions, LABEL, atol=0.1)  # the policy acted, not MPC
        assert planned == []
        obs = torch.as_tensor(collected.obs)

        def distance() -> float:
            with torch.no_grad():
                return float((run.learner.net(obs)[0] - torch.as_tensor(LABEL)).abs().mean())

        before = distance()
        record_labels(run, collected.obs, collected.actions)
        labels = run.learner.labels
        assert torch.equal(labels.obs, obs) and (labels.actions == torch.as_tensor(LABEL)).all()
        assert planned == [7] * 5 + [5]  # 40 states
        train_policy(run)
        assert distance() < 0.5 * before, (before, distance())
    finally:
        run.close()


def test_dagger_starts_from_mpc_labels_on_the_random_episodes():
    """Seed 000's cold start: the first training of a DAgger run has MPC label the random episodes' states."""
    run = run_of("dagger")
    try:
        stub_mpc(run)
        collect_random(run)
        row = train_policy(run)
        labels = run.learner.labels
        assert torch.equal(labels.obs, run.buffer.all()["obs"]) and (labels.actions == torch.as_tensor(LABEL)).all()
        assert row["policy/labels"] == 40 and run.learner.updates == run.cfg.policy.train_steps
    finally:
        run.close()


def test_guided_imitates_mpc_s_executed_actions_and_then_guides_its_rollouts():
    """Guided: nothing to imitate before MPC has acted (no training, no guide); then the labels are the executed
    MPC actions of the collected episodes, and once trained the MLP guides MPC's rollouts."""
    run = run_of("guided")
    try:
        collect_random(run)
        train_dynamics(run)
        assert train_policy(run) == {} and run.policy.guide is None and run.learner.updates == 0
        collected, _, _ = collect_iteration(run, 2, "test")
        record_labels(run, collected.obs, collected.actions)
        assert torch.equal(run.learner.labels.obs, torch.as_tensor(collected.obs))
        assert torch.equal(run.learner.labels.actions, torch.as_tensor(collected.actions))
        row = train_policy(run)
        assert row["policy/labels"] == collected.steps and run.learner.updates == run.cfg.policy.train_steps
        assert run.policy.guide is not None
        state = torch.randn(2, 3, S)
        torch.testing.assert_close(run.policy.guide(state), run.learner.net(state)[0])
    finally:
        run.close()


# ---- runs, resume, policy.pt -----------------------------------------------------------------


def rows_of(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("kind", KINDS)
def test_policy_runs_log_their_rows_and_resume_where_they_stopped(kind, tmp_path):
    """A 3-iteration run of each kind logs its rows (policy loss, acting time); a run stopped after two iterations
    (guided: trained once by then) and resumed restores the policy network, its optimiser, labels and updates as
    checkpointed, and logs the very rows of the uninterrupted run."""
    overrides = [*TINY, f"policy.kind={kind}"]
    whole = main(config_path=SMOKE, overrides=[*overrides, "train.iterations=3"], logdir=tmp_path / "whole")
    rows = rows_of(whole)
    assert [row["Iteration"] for row in rows] == [0, 1, 2]
    for row in rows:
        assert row["act_ms"] > 0 and row["policy/train_time"] >= 0
        assert ("planner/ms" in row) == (kind != "bptt")  # dagger: MPC's labelling calls
    assert all("policy/loss" in row for row in rows[kind == "guided" :])  # guided: nothing to imitate at first
    assert ("policy/labels" in rows[-1]) == (kind != "bptt")

    part = main(config_path=SMOKE, overrides=[*overrides, "train.iterations=2"], logdir=tmp_path / "part")
    saved = load_checkpoint(part / "checkpoint.pt", kind="state")
    run = prepare(load_config(StateAgentConfig, part / "config.yaml"), saved)
    try:
        policy = saved["run"]["policy"]
        for name, tensor in run.learner.net.state_dict().items():
            assert torch.equal(tensor, policy["net"][name]), name
        assert run.learner.updates == policy["updates"] > 0
        assert torch.equal(run.learner.labels.obs, policy["labels"]["obs"])
        state = run.learner.optimizer.state_dict()["state"]
        saved_state = policy["optimizer"]["state"]
        assert state and all(torch.equal(s["exp_avg"], saved_state[i]["exp_avg"]) for i, s in state.items())
        assert (run.policy.guide is not None) == (kind == "guided")
    finally:
        run.close()
    main(overrides=["train.iterations=3"], resume=part)
    assert without_timing(rows_of(part)) == without_timing(rows)


@pytest.mark.parametrize("kind", KINDS)
def test_policy_file_carries_the_network(kind, tmp_path):
    """policy.pt holds the network: a loaded bptt or dagger agent acts with it alone, never planning; a loaded
    guided agent plans with it as its guide."""
    overrides = [*TINY, f"policy.kind={kind}", "train.iterations=2"]
    logdir = main(config_path=SMOKE, overrides=overrides, logdir=tmp_path / "r")
    trained = load_checkpoint(logdir / "checkpoint.pt", kind="state")["run"]["policy"]["net"]
    agent = load_agent(logdir, device="cpu")
    obs = np.random.default_rng(0).normal(size=(3, S)).astype(np.float32)
    if kind == "guided":
        assert isinstance(agent, StatePolicy) and agent.guide is not None
        net = agent.guide.__self__
    else:
        assert isinstance(agent, NetworkPolicy)
        net = agent.net
        agent.reset()
        expected, _ = net(torch.as_tensor(obs))
        np.testing.assert_array_equal(agent.act(obs), expected.detach().numpy())
    for name, tensor in net.state_dict().items():
        assert torch.equal(tensor, trained[name]), name


def test_network_policy_keeps_the_recurrent_state_of_the_envs_playing_on():
    """A GRU policy acting for 3 envs, then only envs 0 and 2 go on (keep([0, 2])): their actions are those of
    the same policy run for envs 0 and 2 alone from the start."""
    torch.manual_seed(0)
    learner = PolicyLearner(PolicyConfig(kind="bptt", hidden_size=8), S, A, *box())
    obs = np.random.default_rng(0).normal(size=(3, 3, S)).astype(np.float32)  # (T, B, S)
    together, alone = NetworkPolicy(learner.net), NetworkPolicy(learner.net)
    together.reset()
    alone.reset()
    together.act(obs[0])
    alone.act(obs[0, [0, 2]])
    together.keep(np.array([0, 2]))
    np.testing.assert_allclose(together.act(obs[1, [0, 2]]), alone.act(obs[1, [0, 2]]), atol=1e-6)


# ---- aggregation and epochs -------------------------------------------------------------------


def test_without_aggregation_the_data_stays_the_random_episodes(tmp_path):
    """train.aggregate=false: after two iterations the data is still the random episodes (the MPC episodes and the
    DynamicsMSE episodes joined neither) while the env steps count every MPC episode played."""
    logdir = main(config_path=SMOKE, overrides=[*TINY, "train.aggregate=false"], logdir=tmp_path / "r")
    run = load_checkpoint(logdir / "checkpoint.pt", kind="state")["run"]
    random_steps = 2 * 20  # train.random_episodes x env.episode_length
    assert run["buffer"]["obs"].shape[0] == random_steps
    assert run["counters"]["env_steps"] == random_steps + 2 * 2 * 20  # and 2 iterations of 2 MPC episodes


def test_epochs_train_in_passes_over_the_data():
    run = prepare(load_config(StateAgentConfig, SMOKE, [*TINY, "train.epochs=2.5", "train.batch_size=16"]), None)
    try:
        collect_random(run)
        assert len(train_dynamics(run)) == math.ceil(2.5 * 40 / 16)
    finally:
        run.close()


@pytest.mark.parametrize(
    "override, message",
    [
        ("policy.kind=ppo", "policy.kind"),
        ("policy.horizon=0", "policy.horizon must be >= 1"),
        ("policy.noise=-1", "policy.noise must be >= 0"),
        ("train.epochs=-1", "train.epochs must be >= 0"),
    ],
)
def test_bad_policy_settings_are_config_errors(override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(StateAgentConfig, SMOKE, [override])
