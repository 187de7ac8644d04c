"""The pixel world model (PlaNet): conv encoder, RSSM, conv decoder and reward head, with the verbs
the pixel agent uses and nothing else:

    model = WorldModel(cfg, action_size=A).to(device)
    metrics = model.train_step(batch_to_torch(replay.sample(B, T, rng), device))
    state = model.filter_step(state, action, frame, is_first)           # acting, one step
    plan = planner.plan(lambda actions: model.imagine_returns(state, actions), batch_size=B)
    truth, imagined = model.open_loop(batch, context=5)                   # Dreamer's openl view

Batches follow the replay's aligned steps (see ``worldmodel/models/rssm.py`` for the indices):
obs uint8 (B, T, C, H, W), action float32 (B, T, A), reward float32 (B, T), is_first bool (B, T).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any, Literal, Mapping

import numpy as np
import torch
from torch import Tensor, nn

from worldmodel.config import check
from worldmodel.cpu import has_native_bf16
from worldmodel.errors import UserError
from worldmodel.models.conv import ConvDecoder, ConvEncoder, check_image_shape
from worldmodel.models.graphed import GraphedStep, set_capturable
from worldmodel.models.losses import SquaredErrorSum
from worldmodel.models.latent_planning import imagined_returns
from worldmodel.models.reward_head import RewardHead
from worldmodel.models.rssm import RSSM, DiagGaussian, RSSMState, free_nats_kl, kl_divergence
from worldmodel.models.value import LatentValue

__all__ = [
    "WorldModelConfig",
    "WorldModel",
    "RSSMState",
    "RewardHead",
    "batch_to_torch",
    "check_image_shape",
]


@dataclass
class WorldModelConfig:
    belief_size: int = 200
    """D, size of the deterministic GRU belief h."""
    state_size: int = 30
    """S, size of the stochastic state z."""
    hidden_size: int = 200
    """Width of the RSSM's and the reward head's hidden layers."""
    embedding_size: int = 1024
    """E, size of a frame's embedding (the conv stack gives 32 * cnn_depth; a linear layer maps it otherwise)."""
    cnn_depth: int = 32
    """Channels of the first conv layer; the next ones double it each time."""
    min_std: float = 0.1
    """Floor added to the softplus std of the prior and the posterior."""
    free_nats: float = 3.0
    """KL below this many nats per step is not penalised."""
    kl_scale: float = 1.0
    """Weight of the KL term in the loss."""
    reward_scale: float = 1.0
    """Weight of the reward term in the loss."""
    learning_rate: float = 1e-3
    """Adam learning rate (PlaNet: 1e-3)."""
    adam_eps: float = 1e-4
    """Adam epsilon (PlaNet: 1e-4)."""
    lr_warmup: int = 0
    """Raise the learning rate linearly over this many first gradient steps; 0: none. (The camera-ready PlaNet
    ramped it over 10,000 samples: 200 steps of batch 50.)"""
    grad_clip: float = 1000.0
    """Clip the gradient's global norm to this."""
    bit_depth: int = 5
    """Frames are quantised to this many bits per channel, with uniform dequantisation noise."""
    train_dtype: Literal["float32", "bfloat16", "auto"] = "auto"
    """bfloat16: the encoder and decoder under bf16 autocast in the training step (weights, the RSSM, the loss sums
    and Adam stay fp32); auto: bfloat16 on a GPU that supports it and on a CPU with bf16 instructions (avx512_bf16,
    AMX), else float32."""
    train_graph: bool = False
    """On a GPU, replay the whole training step as one CUDA graph after 3 eager steps (no effect on a CPU)."""
    value: bool = False
    """Learn a value of the latent state (``worldmodel/models/value.py``) and add discount^L times its prediction
    for the last imagined state to each candidate's imagined rewards: the planner looks past its horizon."""
    discount: float = 0.99
    """The value's discount per agent step."""
    value_lambda: float = 0.95
    """lambda of the value's TD(lambda) targets."""
    value_learning_rate: float = 3e-4
    """Adam learning rate of the value head (its own optimizer)."""

    def __post_init__(self) -> None:
        for name in ("belief_size", "state_size", "hidden_size", "embedding_size", "cnn_depth"):
            value = getattr(self, name)
            check(value >= 1, f"model.{name} must be >= 1, got {value}")
        check(self.min_std > 0, f"model.min_std must be > 0, got {self.min_std}")
        check(self.free_nats >= 0, f"model.free_nats must be >= 0, got {self.free_nats}")
        check(self.kl_scale >= 0, f"model.kl_scale must be >= 0, got {self.kl_scale}")
        check(self.reward_scale >= 0, f"model.reward_scale must be >= 0, got {self.reward_scale}")
        check(self.learning_rate > 0, f"model.learning_rate must be > 0, got {self.learning_rate}")
        check(self.adam_eps > 0, f"model.adam_eps must be > 0, got {self.adam_eps}")
        check(self.lr_warmup >= 0, f"model.lr_warmup must be >= 0, got {self.lr_warmup}")
        check(self.grad_clip > 0, f"model.grad_clip must be > 0, got {self.grad_clip}")
        check(1 <= self.bit_depth <= 8, f"model.bit_depth must be between 1 and 8, got {self.bit_depth}")
        check(0 < self.discount <= 1, f"model.discount must be in (0, 1], got {self.discount}")
        check(0 <= self.value_lambda <= 1, f"model.value_lambda must be in [0, 1], got {self.value_lambda}")
        check(self.value_learning_rate > 0, f"model.value_learning_rate must be > 0, got {self.value_learning_rate}")
        check(
            self.train_dtype in ("float32", "bfloat16", "auto"),
            f"model.train_dtype must be float32, bfloat16 or auto, got {self.train_dtype!r}",
        )


def trains_in_bf16(train_dtype: str, device: torch.device) -> bool:
    """Does ``model.train_dtype`` mean bf16 autocast on ``device``? (``auto``: where bf16 is fast.)"""
    if train_dtype != "auto":
        return train_dtype == "bfloat16"
    if device.type == "cuda":
        return cuda_has_bf16()
    return device.type == "cpu" and has_native_bf16()


@functools.cache
def cuda_has_bf16() -> bool:
    """Asked once: the training step may be being recorded as a CUDA graph when this is needed."""
    return torch.cuda.is_bf16_supported()


def batch_to_torch(batch: Mapping[str, np.ndarray], device: torch.device | str) -> dict[str, Tensor]:
    """The replay's numpy chunk -> tensors on ``device``. Frames stay uint8 (4x less to copy);
    ``WorldModel.preprocess`` turns them into floats on the device."""
    dtypes = {"obs": torch.uint8, "action": torch.float32, "reward": torch.float32, "is_first": torch.bool}
    return {key: torch.as_tensor(batch[key]).to(device=device, dtype=dtype) for key, dtype in dtypes.items()}


class WorldModel(nn.Module):
    """PlaNet's world model over frames (C, 64, 64) and actions (A,); owns its Adam optimizer."""

    def __init__(self, cfg: WorldModelConfig, action_size: int, image_shape: tuple[int, int, int] = (3, 64, 64)):
        super().__init__()
        image_shape = check_image_shape(image_shape)
        self.cfg = cfg
        self.action_size = action_size
        self.image_shape = image_shape
        self.encoder = ConvEncoder(image_shape=image_shape, depth=cfg.cnn_depth, embedding_size=cfg.embedding_size)
        self.decoder = ConvDecoder(
            belief_size=cfg.belief_size, state_size=cfg.state_size, depth=cfg.cnn_depth, image_shape=image_shape
        )
        self.rssm = RSSM(
            action_size=action_size,
            belief_size=cfg.belief_size,
            state_size=cfg.state_size,
            hidden_size=cfg.hidden_size,
            embedding_size=cfg.embedding_size,
            min_std=cfg.min_std,
        )
        self.reward_head = RewardHead(
            belief_size=cfg.belief_size, state_size=cfg.state_size, hidden_size=cfg.hidden_size
        )
        # Channels-last convolutions: 10% faster training on the project's CPU, the format GPUs prefer too.
        self.encoder.to(memory_format=torch.channels_last)
        self.decoder.to(memory_format=torch.channels_last)
        # Adam keeps references to the Parameter objects, which ``.to(device)`` moves in place,
        # and creates its moment buffers lazily, so moving the model after this line is fine.
        self.optimizer = torch.optim.Adam(self.parameters(), lr=cfg.learning_rate, eps=cfg.adam_eps)
        self._world_parameters = list(self.parameters())  # what the optimizer steps and the clip measures
        self.value = (
            LatentValue(
                belief_size=cfg.belief_size,
                state_size=cfg.state_size,
                hidden_size=cfg.hidden_size,
                discount=cfg.discount,
                lam=cfg.value_lambda,
                learning_rate=cfg.value_learning_rate,
            )
            if cfg.value
            else None
        )  # after the optimizer: the value head has its own
        self._graphed_step: GraphedStep | None = None  # model.train_graph on a GPU, made on the first step
        self.updates = 0  # Adam steps taken (the learning-rate warm-up's clock; restored with the optimizer)

    @property
    def device(self) -> torch.device:
        return self.rssm.gru.weight_hh.device

    # ---- frames ---------------------------------------------------------------------------

    def preprocess(self, frames: Tensor, *, noise: bool = True, generator: torch.Generator | None = None) -> Tensor:
        """uint8 frames (..., C, H, W) -> floats (..., C, H, W) in [-0.5, 0.5], quantised to ``bit_depth``
        bits; ``noise`` adds uniform dequantisation noise within each bin (PlaNet, drawn from ``generator``),
        else bin centres. The result is laid out channels-last in memory, as the convolutions and the
        decoder's output are, so that the encoder's input and the image loss need no copies."""
        bins = 2**self.cfg.bit_depth
        levels = frames.movedim(-3, -1) >> (8 - self.cfg.bit_depth)  # (..., H, W, C) uint8: the bin, in [0, bins)
        levels = levels.contiguous().float()  # memory (..., H, W, C)
        if not noise:
            return levels.add_(0.5).mul_(1.0 / bins).sub_(0.5).movedim(-1, -3)
        # The noise is a uniform byte per pixel (256 sub-bins): random bytes come 8 to a 64-bit draw,
        # 7x faster on a CPU than torch.rand_like, which took 5% of a training step. Every pass below is in
        # one dtype: mixed-dtype arithmetic is not vectorised on a CPU (the int32 version took 9 ms a step).
        noise_bytes = torch.empty((frames.numel() + 7) // 8, dtype=torch.int64, device=frames.device)
        noise_bytes = noise_bytes.random_(generator=generator).view(torch.uint8)[: frames.numel()]
        fine = noise_bytes.view(levels.shape).float()  # (..., H, W, C): the sub-bin, in [0, 256)
        x = fine.add_(0.5).mul_(1.0 / (256 * bins)).add_(levels, alpha=1.0 / bins).sub_(0.5)  # (..., H, W, C)
        return x.movedim(-1, -3)  # (..., C, H, W)

    def postprocess(self, x: Tensor) -> Tensor:
        """Floats (..., C, H, W) as ``preprocess`` makes them -> uint8 frames (..., C, H, W)."""
        bins = 2**self.cfg.bit_depth
        levels = torch.floor((x + 0.5) * bins).clamp(0, bins - 1)  # (..., C, H, W)
        return (levels * 2 ** (8 - self.cfg.bit_depth)).to(torch.uint8)

    # ---- the verbs ------------------------------------------------------------------------

    def initial_state(self, batch_size: int) -> RSSMState:
        """The state (B) every episode starts from: h (B, D) and z (B, S), zeros, on the model's device."""
        return self.rssm.initial_state(batch_size, self.device)

    def encode(self, obs: Tensor) -> Tensor:
        """Preprocessed frames (..., C, H, W), e.g. (B, T, C, H, W) -> embeddings (..., E)."""
        return self.encoder(obs)

    def decode(self, h: Tensor, z: Tensor) -> Tensor:
        """h (..., D), z (..., S) -> frame mean (..., C, H, W) in preprocessed units."""
        return self.decoder(h, z)

    def reward(self, h: Tensor, z: Tensor) -> Tensor:
        """h (..., D), z (..., S) -> predicted reward (...) for arriving in that state."""
        return self.reward_head(h, z)

    def observe(
        self, embed: Tensor, action: Tensor, is_first: Tensor, state: RSSMState | None = None, *, sample: bool = True
    ) -> tuple[RSSMState, DiagGaussian, DiagGaussian]:
        """embed (B, T, E), action (B, T, A), is_first (B, T), state (B) or None -> posterior states (B, T),
        priors (B, T), posteriors (B, T). The state resets to the initial one wherever is_first is true."""
        return self.rssm.observe(embed, action, is_first, state, sample=sample)

    def imagine(self, state: RSSMState, actions: Tensor, *, sample: bool = False) -> RSSMState:
        """Roll the prior from state (B) with actions (B, T, A) -> prior states (B, T); z is the prior mean
        unless ``sample``."""
        return self.rssm.imagine(state, actions, sample=sample)

    @torch.no_grad()
    def filter_step(
        self, state: RSSMState, action: Any, obs: Any, is_first: Any, *, generator: torch.Generator | None = None
    ) -> RSSMState:
        """Acting online: state (B), the action that led here (B, A), the new uint8 frame (B, C, H, W) and
        is_first (B,) -> the posterior state (B) (z sampled, as in PlaNet; the frame's dequantisation noise
        and z's noise come from ``generator``). Arrays may be numpy or torch."""
        device = self.device
        action = torch.as_tensor(action, dtype=torch.float32, device=device)  # (B, A)
        obs = torch.as_tensor(obs, device=device)  # (B, C, H, W) uint8
        is_first = torch.as_tensor(is_first, dtype=torch.bool, device=device)  # (B,)
        embed = self.encode(self.preprocess(obs, generator=generator))  # (B, E)
        state, _, _ = self.rssm.observe_step(state, action, embed, is_first, generator=generator)
        return state

    def imagine_returns(
        self, state: RSSMState, actions: Tensor, *, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """The planning objective: state (B), candidate actions (B, N, L, A) -> predicted returns (B, N).

        Rolls the prior L steps for all B * N candidates at once and sums the reward head's
        predictions as it goes; nothing is stored and nothing leaves the device. z follows the
        prior mean unless ``sample`` (PlaNet samples, from ``generator``; ``planner.sample``). With
        ``model.value``, discount^L times the value of the last imagined state is added. The fast rollout lives in
        ``latent_planning``; it equals ``imagine`` followed by ``reward`` (and the value head).
        """
        return imagined_returns(
            self.rssm, self.reward_head, state, actions, sample=sample, generator=generator,
            value_head=self.value, value_weight=self.cfg.discount ** actions.shape[2],
        )

    # ---- training -------------------------------------------------------------------------

    def loss(self, batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        """PlaNet's loss on a chunk (see the module docstring for the keys and shapes) -> (total, metrics).

        recon: squared error summed over pixels, mean over (B, T) (a unit-variance Gaussian NLL up to
        a constant); reward: mean squared error; kl: KL(posterior || prior) per step, floored at
        ``free_nats``, mean over (B, T). With ``model.value`` the value head's loss on the chunk's (detached)
        posterior states is added to the total it returns (its gradient reaches the value head only).
        """
        obs = self.preprocess(batch["obs"])  # (B, T, C, H, W)
        embed = self.encode(obs).float()  # (B, T, E)
        # The RSSM and the reward head in fp32 even under autocast: their matmuls are too small to gain from
        # bf16, and their 25 sequential steps would pay a cast per layer and step.
        with torch.autocast(self.device.type, enabled=False):
            states, priors, posts = self.observe(embed, batch["action"], batch["is_first"])  # (B, T)
            reward = self.reward(states.h, states.z)  # (B, T)
            if self.value is not None:
                value_loss, value_metrics = self.value.loss(states.h, states.z, batch["reward"], batch["is_first"])
        recon = self.decode(states.h, states.z)  # (B, T, C, H, W), bf16 under autocast
        # Every loss term in fp32: the image loss takes the decoder's dtype and sums in fp32.
        recon_loss = SquaredErrorSum.apply(recon, obs, 1.0 / obs.shape[:-3].numel())  # sum over pixels, mean (B, T)
        reward_loss = (reward - batch["reward"]).pow(2).mean()
        kl = kl_divergence(posts, priors)  # (B, T)
        kl_loss = free_nats_kl(kl, self.cfg.free_nats)
        total = recon_loss + self.cfg.reward_scale * reward_loss + self.cfg.kl_scale * kl_loss
        metrics = {
            "total_loss": total.detach(),
            "recon_loss": recon_loss.detach(),
            "reward_loss": reward_loss.detach(),
            "kl_loss": kl_loss.detach(),
            "kl": kl.mean().detach(),  # before the free-nats floor
            "prior_std": priors.std.mean().detach(),
            "posterior_std": posts.std.mean().detach(),
        }
        if self.value is not None:
            metrics.update(value_metrics)
            total = total + value_loss
        return total, metrics

    def train_step(self, batch: Mapping[str, Tensor]) -> dict[str, Tensor]:
        """One Adam step on a chunk (tensors on the model's device) -> detached scalar metrics, incl. grad_norm."""
        self.train()
        warming_up = self._set_warm_up_lr()
        self.updates += 1
        # A recorded graph keeps the learning rate it was recorded with, so it waits for the warm-up's end.
        if self.cfg.train_graph and self.device.type == "cuda" and not warming_up:
            if self._graphed_step is None:
                self._graphed_step = GraphedStep(self._train_step, self.optimizer)
            return self._graphed_step(batch)
        return self._train_step(batch)

    def _set_warm_up_lr(self) -> bool:
        """The next step's learning rate on ``model.lr_warmup``'s linear ramp; True while it ramps."""
        warmup = self.cfg.lr_warmup
        if self.updates >= warmup:
            return False
        for group in self.optimizer.param_groups:
            group["lr"] = self.cfg.learning_rate * (self.updates + 1) / warmup
        return True

    def _train_step(self, batch: Mapping[str, Tensor], capturing: bool = False) -> dict[str, Tensor]:
        # Autocast's cache of bf16 weights cannot outlive a CUDA graph recording, so it is off then.
        bf16 = trains_in_bf16(self.cfg.train_dtype, self.device)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=bf16, cache_enabled=not capturing):
            total, metrics = self.loss(batch)
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        metrics["grad_norm"] = nn.utils.clip_grad_norm_(self._world_parameters, self.cfg.grad_clip).detach()
        self.optimizer.step()
        if self.value is not None:
            metrics["value_grad_norm"] = self.value.step()
        return metrics

    def checkpoint_state(self) -> dict[str, Any]:
        """Weights and optimizer state, for ``save_checkpoint``."""
        state = {"model": self.state_dict(), "optimizer": self.optimizer.state_dict()}
        if self.value is not None:
            state["value_optimizer"] = self.value.checkpoint_state()
        return state

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        self.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        if self.value is not None:
            self.value.load_checkpoint_state(state["value_optimizer"])
        adam_state = next(iter(self.optimizer.state.values()), {})
        self.updates = int(adam_state["step"]) if "step" in adam_state else 0
        # New optimizer tensors: a recorded training step would write to the old ones.
        set_capturable(self.optimizer, False)
        if self._graphed_step is not None:
            self._graphed_step.reset()

    # ---- views for logging ----------------------------------------------------------------

    @torch.no_grad()
    def reconstruct(self, batch: Mapping[str, Tensor]) -> Tensor:
        """Decode the posterior (mean) of every frame of a chunk -> uint8 frames (B, T, C, H, W)."""
        obs = self.preprocess(batch["obs"], noise=False)  # (B, T, C, H, W)
        states, _, _ = self.observe(self.encode(obs), batch["action"], batch["is_first"], sample=False)
        return self.postprocess(self.decode(states.h, states.z))

    @torch.no_grad()
    def open_loop(self, batch: Mapping[str, Tensor], context: int = 5) -> tuple[Tensor, Tensor]:
        """Dreamer's open-loop view -> (truth, model), uint8 (B, T, C, H, W) each.

        The model filters the first ``context`` frames (posterior means, decoded), then rolls the
        prior mean forward with the recorded actions (no resets inside that part) and decodes it.
        Truth is the frames quantised to ``bit_depth``, so truth - model shows only the model's error.
        """
        T = batch["obs"].shape[1]
        if not 1 <= context < T:
            raise UserError(f"open_loop context must be between 1 and the chunk length - 1 ({T - 1}), got {context}")
        obs = self.preprocess(batch["obs"], noise=False)  # (B, T, C, H, W)
        action, is_first = batch["action"], batch["is_first"]
        posterior, _, _ = self.observe(
            self.encode(obs[:, :context]), action[:, :context], is_first[:, :context], sample=False
        )  # (B, context)
        imagined = self.imagine(posterior[:, -1], action[:, context:])  # (B, T - context)
        latent = RSSMState(
            h=torch.cat([posterior.h, imagined.h], dim=1), z=torch.cat([posterior.z, imagined.z], dim=1)
        )  # (B, T)
        return self.postprocess(obs), self.postprocess(self.decode(latent.h, latent.z))
