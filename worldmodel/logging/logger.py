"""One logger for both agents: every row goes to ``logdir/metrics.jsonl`` and, unless
``logger=none``, to wandb (offline by default: no account, no network). Images and videos are
written to ``logdir/media/`` first and logged to wandb from the file (wandb's raw-array video
path needs moviepy, the file path does not)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import imageio.v3 as iio
import numpy as np

from worldmodel.agents.common import WandbConfig


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


class Logger:
    """``log(row)`` appends one JSON line; ``image``/``video`` save media and log them."""

    def __init__(
        self,
        logdir: str | Path,
        *,
        backend: str = "wandb",
        wandb_cfg: WandbConfig | None = None,
        config: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        self.logdir = Path(logdir)
        self.media_dir = self.logdir / "media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self.metrics_path = self.logdir / "metrics.jsonl"
        self._wandb = None
        if backend == "wandb":
            self._wandb = self._start_wandb(wandb_cfg or WandbConfig(), config or {}, resume)

    def _start_wandb(self, cfg: WandbConfig, config: dict[str, Any], resume: bool):
        import wandb

        run_id_file = self.logdir / "wandb_run_id"
        run_id = run_id_file.read_text().strip() if resume and run_id_file.is_file() else wandb.util.generate_id()
        run_id_file.write_text(run_id)
        run = wandb.init(
            project=cfg.project,
            name=cfg.name or self.logdir.name,
            group=cfg.group,
            tags=list(cfg.tags),
            config=config,
            dir=str(self.logdir),
            mode=os.environ.get("WANDB_MODE", cfg.mode),
            id=run_id,
            resume="allow",
            settings=wandb.Settings(silent=True, console="off"),
        )
        return run

    def log(self, row: dict[str, Any], step: int | None = None) -> None:
        row = {key: _jsonable(value) for key, value in row.items()}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        if self._wandb is not None:
            numeric = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
            self._wandb.log(numeric, step=step)

    def image(self, name: str, image: np.ndarray, step: int) -> Path:
        """Save an (H, W, 3) uint8 image as media/<name>_<step>.png and log it."""
        path = self.media_dir / f"{name.replace('/', '_')}_{step:08d}.png"
        iio.imwrite(path, image)
        if self._wandb is not None:
            import wandb

            self._wandb.log({name: wandb.Image(str(path))}, step=step)
        return path

    def video(self, name: str, frames: np.ndarray, step: int, fps: int = 20) -> Path:
        """Save (T, H, W, 3) uint8 frames as media/<name>_<step>.mp4 and log the file."""
        path = self.media_dir / f"{name.replace('/', '_')}_{step:08d}.mp4"
        write_mp4(path, frames, fps=fps)
        if self._wandb is not None:
            import wandb

            self._wandb.log({name: wandb.Video(str(path), format="mp4")}, step=step)
        return path

    def close(self) -> None:
        if self._wandb is not None:
            self._wandb.finish()
            self._wandb = None


def write_mp4(path: str | Path, frames: np.ndarray, fps: int = 20) -> Path:
    """(T, H, W, 3) uint8 -> H.264 mp4 through imageio's ffmpeg plugin (no moviepy needed)."""
    import imageio.v2 as imageio_v2

    frames = np.asarray(frames, dtype=np.uint8)
    imageio_v2.mimwrite(path, list(frames), fps=fps, macro_block_size=1)
    return Path(path)
