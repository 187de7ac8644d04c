"""The homework's own cheetah (``--env cheetah-cs285``), so results sit beside the seeds' tables.

As in berkeleydeeprlcourse/homework_fall2023 ``hw4/cs285/envs/cheetah/cheetah.py``: gymnasium's
half_cheetah.xml stepped once per action (dt = 0.01 s), 1000-step episodes (the registration's time limit; seed 001's
gymnasium port runs episodes to it, its ep_len of 500 only cuts rendered videos), the observation

    [qpos (9), qvel (9), torso centre of mass (3)]      (21,)

and the reward of ``worldmodel.envs.rewards.cheetah_cs285_reward`` on the new observation:
forward velocity minus 10 for each front joint bent past its range. It never terminates.
Importing this module registers the id with gymnasium, so ``gymnasium.make_vec("cheetah-cs285")``
works.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
from gymnasium import utils
from gymnasium.envs.mujoco import MujocoEnv
from gymnasium.spaces import Box

ENV_ID = "cheetah-cs285"
EPISODE_LENGTH = 1000  # the homework registers cheetah-cs285-v0 with max_episode_steps=1000
OBS_SIZE = 21
RESET_NOISE = 0.1


class CheetahCS285Env(MujocoEnv, utils.EzPickle):
    metadata = {"render_modes": ["human", "rgb_array", "depth_array", "rgbd_tuple"], "render_fps": 100}

    def __init__(self, **kwargs: Any) -> None:
        utils.EzPickle.__init__(self, **kwargs)
        observation_space = Box(low=-np.inf, high=np.inf, shape=(OBS_SIZE,), dtype=np.float64)
        MujocoEnv.__init__(
            self,
            "half_cheetah.xml",
            1,  # frame_skip: the homework acts at the simulator's 100 Hz
            observation_space=observation_space,
            default_camera_config={"distance": 4.0},
            **kwargs,
        )

    def step(self, action: np.ndarray):
        self.do_simulation(action, self.frame_skip)
        obs = self._get_obs()
        reward = self._reward(obs)
        if self.render_mode == "human":
            self.render()
        # Truncation at 1000 steps comes from the TimeLimit wrapper added by ``make``.
        return obs, reward, False, False, {"x_position": self.data.qpos[0], "x_velocity": self.data.qvel[0]}

    @staticmethod
    def _reward(obs: np.ndarray) -> float:
        # The homework's get_reward, written out in numpy: tests check the torch version against it.
        xvel, front_leg, front_shin, front_foot = obs[9], obs[6], obs[7], obs[8]
        penalty = 10.0 * (float(front_leg > 0.2) + float(front_shin > 0.0) + float(front_foot > 0.0))
        return float(xvel - penalty)

    def _get_obs(self) -> np.ndarray:
        return np.concatenate([self.data.qpos.flat, self.data.qvel.flat, self.get_body_com("torso").flat])

    def reset_model(self) -> np.ndarray:
        qpos = self.init_qpos + self.np_random.uniform(low=-RESET_NOISE, high=RESET_NOISE, size=self.model.nq)
        qvel = self.init_qvel + RESET_NOISE * self.np_random.standard_normal(self.model.nv)
        self.set_state(qpos, qvel)
        return self._get_obs()


def register() -> None:
    """Register ``cheetah-cs285`` with gymnasium once (importing this module does it)."""
    if ENV_ID not in gymnasium.registry:
        gymnasium.register(id=ENV_ID, entry_point=CheetahCS285Env, max_episode_steps=EPISODE_LENGTH)


register()
