"""State environments for the ensemble agent: N gymnasium envs stepped together, plus the facts the model
and planner need about them (``StateEnvSpec``).

    cfg = StateEnvConfig(id="Hopper-v5", num_envs=4, episode_length=None, action_repeat=1)
    spec = state_env_spec(cfg.id, action_repeat=cfg.action_repeat)  # sizes, bounds, reward, termination
    envs = make_state_envs(cfg)       # SyncVectorEnv, autoreset off: reset finished envs with a reset_mask

Ids:

- any gymnasium id whose action space is a Box and whose observation is a flat Box (S,); the MuJoCo v5
  bodies of ``worldmodel.envs.bodies`` (HalfCheetah, Hopper, Walker2d, Ant, Swimmer, Reacher, Pusher,
  InvertedPendulum, InvertedDoublePendulum, Humanoid, HumanoidStandup) and ``cheetah-cs285`` come with
  their known torch reward and termination where the observation determines them (Ant is made without
  contact forces: see ``bodies``), any other id with none (the agent learns them);
- ``dmc:DOMAIN-TASK`` (``dmc:walker-walk``, ``dmc:cartpole-swingup``, ``dmc:ball_in_cup-catch``): a
  dm_control suite task from its flattened state (``worldmodel.envs.dmc_state``), reward learned, never
  terminating (the 1000-step time limit truncates).

Absolute x (and y) positions a reward needs stay in the observation, hidden from the model
(``model_input_dims``): it only predicts their deltas, since a body that runs further than in its
training data would otherwise feed the model inputs it never saw.

Action repeat (``action_repeat=k``): each agent action is held for k env steps, rewards summed, stopping
at the first termination (``state_wrappers.ActionRepeat``); env steps = agent steps x k (the caller
counts). With k > 1 the known rewards no longer apply (the intermediate states are not observed), so
``reward_fn`` is None; terminations still do, as the repeat stops on the terminal state.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
import gymnasium
import numpy as np
from gymnasium.spaces import Box, Discrete, MultiBinary, MultiDiscrete
from gymnasium.vector import AutoresetMode

from worldmodel.config import check
from worldmodel.envs.bodies import KNOWN_BODIES, Body
from worldmodel.envs.pixels import DMC_EPISODE_STEPS, import_simulators, is_dmc
from worldmodel.envs.rewards import RewardFn
from worldmodel.envs.state_wrappers import ActionRepeat, AppendBodyXY
from worldmodel.envs.terminations import TerminationFn, never
from worldmodel.errors import UserError

DEFAULT_EPISODE_STEPS = 1000  # for a gymnasium id registered without a time limit
ID_FORMS = "gymnasium id with continuous actions and flat observations, or dmc:DOMAIN-TASK (e.g. dmc:walker-walk)"


@dataclass
class StateEnvConfig:
    id: str = "HalfCheetah-v5"
    """A gymnasium id (HalfCheetah-v5, Hopper-v5, ..., cheetah-cs285) or dmc:DOMAIN-TASK (dm_control suite)."""
    num_envs: int = 4
    """N environments stepped together; the planner plans for all of them in one batched call."""
    episode_length: int | None = 1000
    """Agent steps per episode; null: the env's own limit (Reacher-v5 50, Pusher-v5 100, dmc 1000 / action_repeat)."""
    action_repeat: int = 1
    """Env steps each agent action is held for, rewards summed (env steps = agent steps x action_repeat)."""

    def __post_init__(self) -> None:
        check(bool(self.id.strip()), "env.id must not be empty; e.g. HalfCheetah-v5 or dmc:walker-walk")
        check(self.num_envs >= 1, f"env.num_envs must be >= 1, got {self.num_envs}")
        check(
            self.episode_length is None or self.episode_length >= 1,
            f"env.episode_length must be >= 1 (or null for the env's own time limit), got {self.episode_length}",
        )
        check(self.action_repeat >= 1, f"env.action_repeat must be >= 1, got {self.action_repeat}")


@dataclass(frozen=True)
class StateEnvSpec:
    """What the agent needs to know about an environment."""

    id: str
    obs_size: int
    """S, length of the env's observation (absolute positions included when the known reward needs them)."""
    action_size: int
    """A."""
    action_low: tuple[float, ...]
    """(A,) lower bounds of the action box."""
    action_high: tuple[float, ...]
    """(A,) upper bounds."""
    reward_fn: RewardFn | None
    """(obs, action, next_obs) -> reward (...), exactly env.step's; None: no known reward (learn it)."""
    termination_fn: TerminationFn | None
    """(obs, action, next_obs) -> bool (...), exactly env.step's ``terminated``; None: unknown (learn it)."""
    terminates: bool
    """Whether episodes can end before the time limit (Hopper yes, HalfCheetah no, dmc no)."""
    model_input_dims: tuple[int, ...]
    """Observation dims the dynamics model takes as input (it predicts deltas for all S)."""
    max_episode_steps: int
    """The env's own time limit in agent steps (env steps // action_repeat)."""


def reward_is_known(env_id: str, *, action_repeat: int = 1) -> bool:
    """Whether ``state_env_spec(env_id, action_repeat=...)`` brings a reward function; builds nothing."""
    body = KNOWN_BODIES.get(env_id)
    return action_repeat == 1 and body is not None and body.reward_fn is not None


def termination_is_known(env_id: str) -> bool:
    """Whether the spec brings a termination function (True for envs that never terminate); builds nothing."""
    if is_dmc(env_id):
        return True
    body = KNOWN_BODIES.get(env_id)
    return body is not None and body.termination_fn is not None


def state_env_spec(env_id: str, *, action_repeat: int = 1) -> StateEnvSpec:
    """The spec of ``env_id`` (built once per id and cached: sizes and bounds are read from a real env).

    A ``UserError`` (one line) for an unknown id, discrete actions, image observations or any other
    observation than a flat Box.
    """
    return _cached_spec(env_id, action_repeat)


@functools.lru_cache(maxsize=None)
def _cached_spec(env_id: str, action_repeat: int) -> StateEnvSpec:
    env = make_state_env(env_id)
    try:
        obs_space, action_space = env.observation_space, env.action_space
        own_limit = _own_time_limit(env_id, env)
    finally:
        env.close()
    S, A = obs_space.shape[0], action_space.shape[0]
    body = KNOWN_BODIES.get(env_id)
    if body is not None:
        assert S == body.obs_size, f"{env_id}: observation size {S}, but its known reward indexes {body.obs_size}"
    reward_fn, termination_fn = _known_functions(env_id, body, action_repeat)
    hidden = body.hidden if body is not None else ()
    return StateEnvSpec(
        id=env_id,
        obs_size=S,
        action_size=A,
        action_low=tuple(float(x) for x in action_space.low),
        action_high=tuple(float(x) for x in action_space.high),
        reward_fn=reward_fn,
        termination_fn=termination_fn,
        terminates=termination_fn is not never,
        model_input_dims=tuple(i for i in range(S) if i not in hidden),
        max_episode_steps=max(1, own_limit // action_repeat),
    )


def _known_functions(
    env_id: str, body: Body | None, action_repeat: int
) -> tuple[RewardFn | None, TerminationFn | None]:
    if is_dmc(env_id):
        return None, never
    if body is None:
        return None, None
    return (body.reward_fn if action_repeat == 1 else None), body.termination_fn


def make_state_envs(cfg: StateEnvConfig, *, render_mode: str | None = None) -> gymnasium.vector.SyncVectorEnv:
    """``cfg.num_envs`` copies of ``cfg.id`` in a SyncVectorEnv (MuJoCo steps in microseconds: subprocesses
    would cost more than they save), each truncated after ``cfg.episode_length`` agent steps (None: the
    env's own limit), actions repeated ``cfg.action_repeat`` times.

    Autoreset is off (``AutoresetMode.DISABLED``): an env that terminated or was truncated must be reset,
    ``envs.reset(options={"reset_mask": mask})``, before it is stepped again.
    """
    spec = state_env_spec(cfg.id, action_repeat=cfg.action_repeat)
    length = cfg.episode_length or spec.max_episode_steps

    def make() -> gymnasium.Env:
        return make_state_env(
            cfg.id, render_mode=render_mode, max_env_steps=length * cfg.action_repeat, action_repeat=cfg.action_repeat
        )

    envs = gymnasium.vector.SyncVectorEnv([make] * cfg.num_envs, autoreset_mode=AutoresetMode.DISABLED)
    shapes = (envs.single_observation_space.shape, envs.single_action_space.shape)
    assert shapes == ((spec.obs_size,), (spec.action_size,)), (spec, shapes)
    return envs


def make_state_env(
    env_id: str, *, render_mode: str | None = None, max_env_steps: int | None = None, action_repeat: int = 1
) -> gymnasium.Env:
    """One env as the state agent sees it, its spaces checked. ``max_env_steps``: truncate after this many
    env steps (None: the env's own limit); ``action_repeat``: ``ActionRepeat`` around it when > 1."""
    import_simulators(env_id)
    if is_dmc(env_id):
        from worldmodel.envs.dmc_state import DMCStateEnv

        env: gymnasium.Env = DMCStateEnv(env_id, render_mode=render_mode)
        if max_env_steps is not None:
            env = gymnasium.wrappers.TimeLimit(env, max_env_steps)
    else:
        env = _make_gymnasium(env_id, render_mode, max_env_steps)
    try:
        check_spaces(env_id, env)
    except UserError:
        env.close()
        raise
    return ActionRepeat(env, action_repeat) if action_repeat > 1 else env


def _make_gymnasium(env_id: str, render_mode: str | None, max_env_steps: int | None) -> gymnasium.Env:
    body = KNOWN_BODIES.get(env_id)
    kwargs = body.make_kwargs if body is not None else {}
    try:
        env = gymnasium.make(env_id, render_mode=render_mode, max_episode_steps=max_env_steps, **kwargs)
    except (gymnasium.error.Error, ImportError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(
            f"unknown state environment {env_id!r}; supported: {', '.join(KNOWN_BODIES)} (a known reward or "
            f"termination), any other {ID_FORMS}; gymnasium says: {reason}"
        ) from None
    if body is not None and body.append_body_xy is not None:
        env = AppendBodyXY(env, body.append_body_xy)
    return env


def check_spaces(env_id: str, env: gymnasium.Env) -> None:
    """A ``UserError`` unless the actions are a bounded Box (A,) and the observation a flat Box (S,)."""
    actions, obs = env.action_space, env.observation_space
    if isinstance(actions, (Discrete, MultiDiscrete, MultiBinary)):
        raise UserError(f"{env_id} has discrete actions; the state agent plans in a continuous box")
    if not isinstance(actions, Box) or len(actions.shape) != 1:
        raise UserError(f"{env_id} has actions {actions}; the state agent plans in a continuous box of shape (A,)")
    if not (np.isfinite(actions.low).all() and np.isfinite(actions.high).all()):
        raise UserError(f"{env_id} has unbounded actions {actions}; the state agent plans in a bounded box")
    if isinstance(obs, Box) and len(obs.shape) in (2, 3) and (obs.dtype == "uint8" or len(obs.shape) == 3):
        raise UserError(f"{env_id} observes images; use --obs pixels")
    if not isinstance(obs, Box) or len(obs.shape) != 1:
        raise UserError(
            f"{env_id} observes {type(obs).__name__} {obs}; the state agent needs a flat vector (a Box of shape (S,))"
        )


def _own_time_limit(env_id: str, env: gymnasium.Env) -> int:
    """The env's own time limit in env steps: the suite's for dm_control, else the registration's."""
    if is_dmc(env_id):
        return DMC_EPISODE_STEPS
    limit = env.spec.max_episode_steps if env.spec is not None else None
    return limit or DEFAULT_EPISODE_STEPS
