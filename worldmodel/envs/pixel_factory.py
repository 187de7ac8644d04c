"""``make_pixel_envs``: a batch of pixel envs, here in this process (``pixels.PixelEnvs``) or one worker
process per env (``pixel_workers.WorkerPixelEnvs``).

It lives apart from both so that neither imports the other: ``pixel_workers`` builds on ``pixels``, and this
module on both.

    envs = make_pixel_envs(PixelEnvConfig(id="dmc:cartpole-swingup", num_envs=2), seed=0)  # 2 worker processes
"""

from __future__ import annotations

import os

from worldmodel.envs.pixel_workers import WorkerPixelEnvs
from worldmodel.envs.pixels import PixelEnvConfig, PixelEnvs, make_pixel_env


def make_pixel_envs(cfg: PixelEnvConfig, seed: int = 0) -> PixelEnvs:
    """``cfg.num_envs`` pixel envs seeded ``seed, seed + 1, ...``: one in this process, more in worker
    processes (one each, see ``worldmodel.envs.pixel_workers``) that step and render at the same time."""
    if cfg.num_envs == 1:
        return PixelEnvs([make_pixel_env(cfg, seed)], cfg)
    os.environ.setdefault("MUJOCO_GL", "egl")  # the workers inherit it
    return WorkerPixelEnvs(cfg, seed)
