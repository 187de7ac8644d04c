"""Acting with a learned model: model-predictive control, planning for all B envs in one
batched ``planner.plan`` call per step.

- ``StatePolicy``: CEM / random shooting on the dynamics ensemble, with the env's known reward and termination
  computed from the predicted states, or the ensemble's learned ones.
- ``PixelPolicy``: filters each frame into the RSSM posterior, then plans with latent CEM.
- ``NetworkPolicy``: the state agent's policy network acting alone, no planning (``policy.kind`` bptt, dagger).

The training loops (``state_agent``, ``pixel_agent``) and ``load_agent`` build them.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch

from worldmodel.envs.pixels import PixelEnvs
from worldmodel.envs.rewards import RewardFn
from worldmodel.envs.terminations import TerminationFn
from worldmodel.errors import UserError
from worldmodel.models.dynamics import DynamicsEnsemble
from worldmodel.models.policy import PolicyNetwork
from worldmodel.models.world_model import RSSMState, WorldModel
from worldmodel.planning import Planner
from worldmodel.planning.compiled import compiled_call


class StatePolicy:
    """MPC on the learned ensemble: plans for all B envs in one ``planner.plan`` call.

    ``reward_fn`` / ``termination_fn``: the env's known functions of (s, a, s'), or None for the ensemble's
    learned reward / termination (none at all: imagined rollouts never end).

    >>> policy.reset()                         # at the start of episodes (forgets the warm start)
    >>> actions = policy.act(obs)              # numpy (B, S) -> numpy (B, A)
    >>> policy.keep(rows)                      # some episodes ended: the next act() gets obs of these rows only
    >>> envs = policy.make_env(num_envs=1, render_mode="rgb_array")
    """

    def __init__(
        self,
        model: DynamicsEnsemble,
        planner: Planner,
        *,
        reward_fn: RewardFn | None,
        termination_fn: TerminationFn | None,
        make_env: Callable[..., Any] | None = None,
        guide: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> None:
        self.model = model
        self.planner = planner
        self.reward_fn = reward_fn
        self.termination_fn = termination_fn
        self.guide = guide
        """Policy-guided MPC: a policy on imagined states (E, R, S) -> (E, R, A) that takes every candidate's
        actions after its first (``DynamicsEnsemble.imagine_returns``); None: the candidates' own."""
        self.make_env = make_env
        """``make_env(num_envs=1, render_mode=None)``: the gymnasium vector env this agent was trained on."""
        self.plan_seconds = 0.0
        self.plan_calls = 0

    @property
    def device(self) -> torch.device:
        return self.planner.device

    def reset(self) -> None:
        self.planner.reset()

    def keep(self, rows: np.ndarray) -> None:
        """Only the envs at ``rows`` (positions in the last ``act`` call) play on: their warm starts stay theirs."""
        self.planner.keep_rows(torch.as_tensor(rows, dtype=torch.long, device=self.device))

    def objective(self, state: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
        """The planner's objective from the states (B, S): actions (B, N, L, A) -> imagined returns (B, N)."""
        guide = self.guide
        return lambda actions: self.model.imagine_returns(state, actions, self.reward_fn, self.termination_fn, guide)

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        state = torch.as_tensor(obs, dtype=torch.float32, device=self.device)  # (B, S)
        plan = self.planner.plan(self.objective(state), batch_size=state.shape[0])  # (B, L, A)
        actions = plan[:, 0].cpu().numpy()  # the one host copy per env step, after planning
        self.plan_seconds += time.perf_counter() - started
        self.plan_calls += 1
        return actions


class NetworkPolicy:
    """A policy network acting by itself (no planning), for B envs at once; a recurrent one keeps each env's
    state. ``noise``: std of Gaussian noise added to its actions, as a fraction of the box's half-range
    (exploration), drawn from ``generator``; the actions stay in the box.

    >>> policy.reset()                         # at the start of episodes (the recurrent state starts afresh)
    >>> actions = policy.act(obs)              # numpy (B, S) -> numpy (B, A)
    >>> policy.keep(rows)                      # some episodes ended: the state rows of those going on
    """

    def __init__(
        self,
        net: PolicyNetwork,
        *,
        noise: float = 0.0,
        generator: torch.Generator | None = None,
        make_env: Callable[..., Any] | None = None,
    ) -> None:
        self.net = net
        self.noise = noise
        self.generator = generator
        self.make_env = make_env
        """``make_env(num_envs=1, render_mode=None)``: the gymnasium vector env this agent was trained on."""
        self.state: torch.Tensor | None = None  # (K, B, H) for a recurrent net, else None
        self.act_seconds = 0.0
        self.act_calls = 0

    @property
    def device(self) -> torch.device:
        return self.net.low.device

    def reset(self) -> None:
        self.state = None

    def keep(self, rows: np.ndarray) -> None:
        """Only the envs at ``rows`` (positions in the last ``act`` call) play on: their recurrent state stays theirs."""
        if self.state is not None:
            self.state = self.state[:, torch.as_tensor(rows, dtype=torch.long, device=self.device)]

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        started = time.perf_counter()
        obs_t = torch.as_tensor(obs, dtype=torch.float32, device=self.device)  # (B, S)
        action, self.state = self.net(obs_t, self.state)  # (B, A)
        if self.noise > 0:
            half_range = (self.net.high - self.net.low) / 2  # (A,)
            noise = torch.randn(action.shape, device=self.device, generator=self.generator)
            action = torch.clamp(action + self.noise * half_range * noise, self.net.low, self.net.high)
        actions = action.cpu().numpy()
        self.act_seconds += time.perf_counter() - started
        self.act_calls += 1
        return actions


class PixelPolicy:
    """Acts from frames: filters each frame into the posterior state, then plans from it with latent CEM.

    >>> policy.reset()
    >>> actions = policy.act(frames)          # frames uint8 (B, C, H, W) -> actions (B, A) numpy in [-1, 1]
    >>> seen = policy.reconstruct()           # the model's picture of the last frame, uint8 (B, C, H, W)
    """

    def __init__(
        self,
        world_model: WorldModel,
        planner: Planner,
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
        self._plan_call = self.plan
        if planner.cfg.compile:
            generators = {id(g): g for g in (generator, planner.generator) if g is not None}.values()
            self._plan_call = compiled_call(self.plan, world_model.device, list(generators))

    def plan(self, h: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """One planner call from the belief h (B, D), z (B, S) -> plan (B, L, A); ``planner.compile``
        compiles exactly this."""
        state = RSSMState(h, z)
        return self.planner.plan(
            lambda actions: self.world_model.imagine_returns(
                state, actions, sample=self.planner.cfg.sample, generator=self.generator
            ),
            batch_size=h.shape[0],
        )

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
        self.state = wm.filter_step(self.state, self._previous_action, obs, is_first, generator=self.generator)
        plan = self._plan_call(self.state.h, self.state.z)  # (B, L, A)
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
