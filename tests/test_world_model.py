"""The pixel world model: RSSM shapes and resets, KL and free nats, the planning objective against a hand
loop, the logging views, and a tiny model overfitting real frames (its convolutions: test_conv.py)."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest
import torch

from worldmodel.errors import UserError
from worldmodel.models.rssm import RSSM, DiagGaussian, RSSMState, free_nats_kl, kl_divergence
from worldmodel.models.world_model import WorldModel, WorldModelConfig, batch_to_torch

A = 2
TINY = dict(belief_size=32, state_size=8, hidden_size=32, embedding_size=128, cnn_depth=4)


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


def tiny_model(**overrides) -> WorldModel:
    torch.manual_seed(0)
    return WorldModel(WorldModelConfig(**{**TINY, **overrides}), action_size=A)


def random_batch(B: int, T: int, generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
    g = generator or torch.Generator().manual_seed(0)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = True
    return {
        "obs": torch.randint(0, 256, (B, T, 3, 64, 64), dtype=torch.uint8, generator=g),
        "action": torch.rand(B, T, A, generator=g) * 2 - 1,
        "reward": torch.rand(B, T, generator=g),
        "is_first": is_first,
    }


# ---- RSSM ------------------------------------------------------------------------------------


def tiny_rssm() -> RSSM:
    torch.manual_seed(0)
    return RSSM(action_size=A, belief_size=12, state_size=5, hidden_size=16, embedding_size=20, min_std=0.1)


@pytest.mark.parametrize("B,T", [(1, 1), (3, 4), (2, 9)])
def test_rssm_prior_and_posterior_shapes(B: int, T: int) -> None:
    rssm = tiny_rssm()
    is_first = torch.zeros(B, T, dtype=torch.bool)
    states, priors, posts = rssm.observe(torch.randn(B, T, 20), torch.randn(B, T, A), is_first)
    assert states.h.shape == (B, T, 12) and states.z.shape == (B, T, 5)
    for dist in (priors, posts):
        assert dist.mean.shape == (B, T, 5) and dist.std.shape == (B, T, 5)
        assert (dist.std >= 0.1).all()
    imagined = rssm.imagine(states[:, -1], torch.randn(B, T, A))
    assert imagined.batch_shape == (B, T) and imagined.h.shape == (B, T, 12) and imagined.z.shape == (B, T, 5)


def test_rssm_resets_where_is_first() -> None:
    """A chunk spanning two episodes gives, from the boundary on, exactly what the second episode alone gives."""
    rssm = tiny_rssm()
    B, T, k = 2, 7, 3
    embed, action = torch.randn(B, T, 20), torch.randn(B, T, A)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[:, 0] = is_first[:, k] = True
    spanning, _, _ = rssm.observe(embed, action, is_first, sample=False)
    alone, _, _ = rssm.observe(embed[:, k:], action[:, k:], is_first[:, k:], sample=False)
    torch.testing.assert_close(spanning.h[:, k:], alone.h)
    torch.testing.assert_close(spanning.z[:, k:], alone.z)
    # Without the reset the history leaks in.
    no_reset, _, _ = rssm.observe(embed, action, torch.zeros_like(is_first), sample=False)
    assert not torch.allclose(no_reset.h[:, k:], alone.h)



@pytest.mark.parametrize("sample", [False, True])
def test_observe_gives_what_observe_step_gives_step_by_step(sample: bool) -> None:
    """The sequence filter (input shares for all steps at once, priors after the loop, one noise draw) against
    the one-step filter that acting uses, with a reset inside the chunk and a given start state."""
    rssm = tiny_rssm()
    B, T = 3, 6
    embed, action = torch.randn(B, T, 20), torch.randn(B, T, A)
    is_first = torch.zeros(B, T, dtype=torch.bool)
    is_first[1, 0] = is_first[0, 4] = True
    start = RSSMState(h=torch.randn(B, 12), z=torch.randn(B, 5))
    states, priors, posts = rssm.observe(embed, action, is_first, start, sample=sample,
                                         generator=torch.Generator().manual_seed(7))
    noise = torch.randn(T, B, 5, generator=torch.Generator().manual_seed(7))
    state = start
    for t in range(T):
        stepped, prior, post = rssm.observe_step(state, action[:, t], embed[:, t], is_first[:, t], sample=False)
        state = RSSMState(stepped.h, post.mean + post.std * noise[t] if sample else post.mean)
        for got, expected in ((states[:, t], state), (priors[:, t], prior), (posts[:, t], post)):
            for name in ("h", "z") if isinstance(got, RSSMState) else ("mean", "std"):
                torch.testing.assert_close(getattr(got, name), getattr(expected, name), rtol=1e-5, atol=1e-5)
    loss = states.z.sum() + priors.mean.sum() + posts.std.sum()
    loss.backward()  # gradients reach every input layer
    assert all(p.grad is not None for p in rssm.parameters())


def test_state_helpers() -> None:
    states = RSSMState(h=torch.randn(2, 5, 4), z=torch.randn(2, 5, 3))
    assert states[:, 1].batch_shape == (2,)
    assert states.reshape(10).h.shape == (10, 4)
    assert states.features.shape == (2, 5, 7)
    stacked = RSSMState.stack([states[:, t] for t in range(5)], dim=1)
    torch.testing.assert_close(stacked.h, states.h)
    assert not RSSMState(torch.ones(1, 2, requires_grad=True), torch.ones(1, 1)).detach().h.requires_grad


# ---- KL and free nats ------------------------------------------------------------------------


def test_kl_is_zero_for_identical_distributions_and_positive_otherwise() -> None:
    g = torch.Generator().manual_seed(0)
    p = DiagGaussian(torch.randn(4, 6, generator=g), torch.rand(4, 6, generator=g) + 0.1)
    assert torch.equal(kl_divergence(p, p), torch.zeros(4))
    q = DiagGaussian(p.mean + 0.5, p.std * 1.5)
    kl = kl_divergence(p, q)
    assert kl.shape == (4,) and (kl > 0).all()
    reference = torch.distributions.kl_divergence(
        torch.distributions.Normal(p.mean, p.std), torch.distributions.Normal(q.mean, q.std)
    ).sum(-1)
    torch.testing.assert_close(kl, reference)


def test_free_nats_clamp() -> None:
    kl = torch.tensor([0.5, 1.0, 5.0, 7.0], requires_grad=True)
    loss = free_nats_kl(kl, free_nats=3.0)
    assert loss.item() == pytest.approx((3 + 3 + 5 + 7) / 4)
    loss.backward()
    torch.testing.assert_close(kl.grad, torch.tensor([0.0, 0.0, 0.25, 0.25]))  # no gradient below the floor


# ---- frames ----------------------------------------------------------------------------------


def test_preprocess_quantises_to_bit_depth_with_noise_inside_the_bin() -> None:
    model = tiny_model()
    frames = torch.arange(256, dtype=torch.uint8).reshape(1, 1, 16, 16).expand(1, 3, 16, 16)
    x = model.preprocess(frames)
    assert x.dtype == torch.float32 and x.min() >= -0.5 and x.max() <= 0.5
    levels = frames.float() // 8  # 5 bits: 32 levels
    assert ((x + 0.5) * 32 >= levels).all() and ((x + 0.5) * 32 < levels + 1).all()
    assert not torch.equal(x, model.preprocess(frames))  # fresh noise each call
    within = ((x + 0.5) * 32 - levels).flatten()  # where in its bin each value fell: uniform on [0, 1)
    assert abs(within.mean().item() - 0.5) < 0.05 and within.unique().numel() > 200
    quantised = model.postprocess(model.preprocess(frames, noise=False))
    assert quantised.dtype == torch.uint8
    torch.testing.assert_close(quantised, (levels * 8).to(torch.uint8))
    torch.testing.assert_close(model.postprocess(model.preprocess(frames)), quantised)


# ---- the model's verbs -----------------------------------------------------------------------


def test_loss_metrics_and_train_step() -> None:
    model = tiny_model()
    batch = random_batch(2, 4)
    total, metrics = model.loss(batch)
    assert total.requires_grad and total.shape == ()
    assert {"recon_loss", "reward_loss", "kl_loss", "total_loss"} <= metrics.keys()
    assert all(v.shape == () and not v.requires_grad for v in metrics.values())
    assert metrics["kl_loss"] >= model.cfg.free_nats
    before = [p.detach().clone() for p in model.parameters()]
    metrics = model.train_step(batch)
    assert "grad_norm" in metrics
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))


def test_checkpoint_state_round_trip_includes_the_optimizer() -> None:
    model = tiny_model()
    batch = random_batch(2, 3)
    model.train_step(batch)
    buffer = io.BytesIO()  # through bytes, like a checkpoint file: no tensors shared with ``model``
    torch.save(model.checkpoint_state(), buffer)
    buffer.seek(0)
    restored = tiny_model(learning_rate=0.5)
    restored.load_checkpoint_state(torch.load(buffer))
    assert restored.optimizer.param_groups[0]["lr"] == model.cfg.learning_rate
    torch.manual_seed(1)
    a = model.train_step(batch)
    torch.manual_seed(1)
    b = restored.train_step(batch)
    torch.testing.assert_close(a["total_loss"], b["total_loss"])
    for p, q in zip(model.parameters(), restored.parameters()):
        torch.testing.assert_close(p, q)


def test_learning_rate_warms_up_linearly_and_resumes_mid_ramp() -> None:
    model = tiny_model(lr_warmup=4, learning_rate=1e-3)
    batch = random_batch(2, 3)
    lrs = []
    for _ in range(2):
        model.train_step(batch)
        lrs.append(model.optimizer.param_groups[0]["lr"])
    restored = tiny_model(lr_warmup=4, learning_rate=1e-3)
    restored.load_checkpoint_state(model.checkpoint_state())
    assert restored.updates == 2
    for _ in range(4):
        restored.train_step(batch)
        lrs.append(restored.optimizer.param_groups[0]["lr"])
    assert lrs == pytest.approx([0.25e-3, 0.5e-3, 0.75e-3, 1e-3, 1e-3, 1e-3])


def test_a_checkpoint_of_a_graphed_gpu_run_trains_on_a_cpu() -> None:
    """model.train_graph leaves Adam capturable (step counters on the GPU) in its checkpoints; loading one
    must give back an optimizer that steps where it now is."""
    model = tiny_model()
    batch = random_batch(2, 3)
    model.train_step(batch)
    state = model.checkpoint_state()
    state["optimizer"]["param_groups"][0]["capturable"] = True  # as a graphed run saves it
    restored = tiny_model()
    restored.load_checkpoint_state(state)
    assert restored.optimizer.param_groups[0]["capturable"] is False
    steps = [s["step"] for s in restored.optimizer.state.values()]
    assert steps and all(step.device.type == "cpu" and float(step) == 1 for step in steps)
    restored.train_step(batch)
    assert all(float(s["step"]) == 2 for s in restored.optimizer.state.values())


def test_batch_to_torch_dtypes() -> None:
    batch = {
        "obs": np.zeros((2, 3, 3, 64, 64), np.uint8),
        "action": np.zeros((2, 3, A), np.float32),
        "reward": np.zeros((2, 3), np.float32),
        "is_first": np.zeros((2, 3), bool),
    }
    tensors = batch_to_torch(batch, "cpu")
    assert [tensors[k].dtype for k in ("obs", "action", "reward", "is_first")] == [
        torch.uint8,
        torch.float32,
        torch.float32,
        torch.bool,
    ]
    assert tensors["obs"].shape == (2, 3, 3, 64, 64)


@pytest.mark.parametrize("B,N,L", [(1, 5, 1), (2, 7, 4)])
def test_imagine_returns_matches_a_hand_loop(B: int, N: int, L: int) -> None:
    model = tiny_model()
    state = RSSMState(h=torch.randn(B, TINY["belief_size"]), z=torch.randn(B, TINY["state_size"]))
    actions = torch.rand(B, N, L, A) * 2 - 1
    returns = model.imagine_returns(state, actions)
    assert returns.shape == (B, N)
    with torch.no_grad():
        for b in range(B):
            for n in range(N):
                s = state[b : b + 1]
                total = torch.zeros(1)
                for t in range(L):
                    h, prior = model.rssm.transition(s, actions[b : b + 1, n, t])
                    s = RSSMState(h, prior.mean)
                    total = total + model.reward(s.h, s.z)
                torch.testing.assert_close(returns[b, n], total[0], rtol=1e-5, atol=1e-5)
    # The same rollout through ``imagine`` gives the same return.
    imagined = model.imagine(state[0:1], actions[0:1, 0])
    torch.testing.assert_close(returns[0, 0], model.reward(imagined.h, imagined.z).sum().detach(), rtol=1e-5, atol=1e-5)


def test_sampled_planning_draws_z_from_the_prior_with_the_given_generator() -> None:
    """sample (planner.sample): z_t = prior mean + prior std * noise_t, the noise of all L steps drawn (L, B*N, S) at
    once from the generator."""
    model = tiny_model()
    B, N, L = 2, 3, 4
    state = RSSMState(h=torch.randn(B, TINY["belief_size"]), z=torch.randn(B, TINY["state_size"]))
    actions = torch.rand(B, N, L, A) * 2 - 1
    returns = model.imagine_returns(state, actions, sample=True, generator=torch.Generator().manual_seed(5))
    again = model.imagine_returns(state, actions, sample=True, generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(returns, again, rtol=0, atol=0)
    noise_source = torch.Generator().manual_seed(5)
    with torch.no_grad():
        s = state.map(lambda x: x.repeat_interleave(N, dim=0))  # (B*N)
        flat = actions.reshape(B * N, L, A)
        total = torch.zeros(B * N)
        noise = torch.randn(L, B * N, TINY["state_size"], generator=noise_source)
        for t in range(L):
            h, prior = model.rssm.transition(s, flat[:, t])
            s = RSSMState(h, prior.mean + prior.std * noise[t])
            total = total + model.reward(s.h, s.z)
    torch.testing.assert_close(returns, total.reshape(B, N), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(returns, tiny_model().imagine_returns(state, actions))


def test_planning_in_chunks_gives_the_same_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    import worldmodel.cpu

    model = tiny_model()
    state = RSSMState(h=torch.randn(3, TINY["belief_size"]), z=torch.randn(3, TINY["state_size"]))
    actions = torch.rand(3, 5, 4, A) * 2 - 1
    whole = model.imagine_returns(state, actions)
    monkeypatch.setattr(worldmodel.cpu, "CPU_CHUNK_ROWS", 4)  # 15 rows in chunks of 4, 4, 4, 3
    torch.testing.assert_close(model.imagine_returns(state, actions), whole, rtol=1e-6, atol=1e-6)


def test_the_planning_activations_equal_torch_s() -> None:
    from worldmodel.models.latent_planning import elu_, tanh_

    x = torch.linspace(-20, 20, 10001)
    torch.testing.assert_close(elu_(x.clone()), torch.nn.functional.elu(x), rtol=0, atol=1e-6)
    torch.testing.assert_close(tanh_(x.clone()), torch.tanh(x), rtol=0, atol=1e-6)


def test_filter_step_and_logging_views() -> None:
    model = tiny_model()
    B, T = 2, 6
    batch = random_batch(B, T)
    state = model.initial_state(B)
    assert state.h.shape == (B, TINY["belief_size"]) and state.z.shape == (B, TINY["state_size"])
    state = model.filter_step(state, np.zeros((B, A)), batch["obs"][:, 0].numpy(), np.ones(B, bool))
    assert state.h.shape == (B, TINY["belief_size"]) and not state.h.requires_grad
    truth, imagined = model.open_loop(batch, context=2)
    recon = model.reconstruct(batch)
    for frames in (truth, imagined, recon):
        assert frames.shape == (B, T, 3, 64, 64) and frames.dtype == torch.uint8
    torch.testing.assert_close(imagined[:, :2], recon[:, :2])  # the context part is the posterior decode
    with pytest.raises(UserError, match="open_loop context"):
        model.open_loop(batch, context=T)


# ---- learning on real frames -----------------------------------------------------------------


def render_cartpole(steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(steps, 3, 64, 64) uint8 frames of dm_control cartpole-swingup under random actions, aligned steps."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from dm_control import suite

    env = suite.load("cartpole", "swingup", task_kwargs={"random": 0})
    rng = np.random.default_rng(0)
    env.reset()
    frames, actions, rewards = [env.physics.render(64, 64, camera_id=0)], [np.zeros(1)], [0.0]
    for _ in range(steps - 1):
        action = rng.uniform(-1, 1, size=1)
        reward = sum(env.step(action).reward or 0.0 for _ in range(4))  # action repeat 4: visible motion
        frames.append(env.physics.render(64, 64, camera_id=0))
        actions.append(action)
        rewards.append(reward)
    obs = np.stack(frames).transpose(0, 3, 1, 2).copy()  # (T, C, H, W)
    return obs, np.stack(actions).astype(np.float32), np.asarray(rewards, np.float32)


def test_tiny_world_model_overfits_real_frames() -> None:
    obs, action, reward = render_cartpole(12)
    is_first = np.zeros(12, bool)
    is_first[0] = True
    batch = batch_to_torch(
        {
            "obs": obs.reshape(2, 6, 3, 64, 64),
            "action": action.reshape(2, 6, 1),
            "reward": reward.reshape(2, 6),
            "is_first": is_first.reshape(2, 6),
        },
        "cpu",
    )
    torch.manual_seed(0)
    model = WorldModel(WorldModelConfig(**TINY), action_size=1)
    losses = [model.train_step(batch)["recon_loss"].item() for _ in range(100)]
    first, last = np.mean(losses[:5]), np.mean(losses[-5:])
    assert last < 0.25 * first, (first, last)  # about 550 -> 60 at this seed
    assert model.reconstruct(batch).shape == (2, 6, 3, 64, 64)


def test_tune_cpu_flushes_denormals_to_zero() -> None:
    from worldmodel.cpu import tune_cpu

    torch.set_flush_denormal(False)  # an earlier test in this process may have trained, and tuned the CPU
    tiny = torch.tensor([1e-39])  # a denormal float32
    assert tiny.item() > 0.0
    try:
        tune_cpu()
        assert (tiny * 1.0).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
    assert (tiny * 1.0).item() > 0.0
