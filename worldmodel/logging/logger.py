"""One logger for both agents: every row goes to ``logdir/metrics.jsonl`` and, unless
``logger=none``, to wandb. Images and videos are written to ``logdir/media/`` first and logged to
wandb from the file (wandb's raw-array video path needs moviepy, the file path does not), so a
user without wandb can look at them too.

wandb runs offline by default: no account, no network, no prompt, no console chatter; the run
lands in ``logdir/wandb/offline-run-*`` and ``wandb sync`` uploads it later. ``WANDB_MODE``
(environment) wins over ``wandb.mode`` (config); ``disabled`` in either means no wandb at all.
The run id is kept in ``logdir/wandb_run_id`` so that ``--resume`` continues the same run.

    logger = Logger(logdir, backend="wandb", wandb_cfg=cfg.wandb, config=to_dict(cfg), resume=False)
    logger.log({"Iteration": 0, "AverageReturn": 12.5}, step=0)
    logger.image("recon", grid_hwc_uint8, step=0)          # also a path to a png, e.g. a loss curve
    logger.figure("model/loss_curve", matplotlib_fig, step=0)
    logger.video("eval_episode", frames_thwc_uint8, step=0, fps=20)
    logger.close()
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import uuid
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal

import imageio.v3 as iio
import numpy as np

from worldmodel.errors import UserError

WANDB_MODES = ("offline", "online", "disabled")


@dataclass
class WandbConfig:
    project: str = "worldmodel"
    """wandb project the run is filed under."""
    name: str | None = None
    """Run name; defaults to the run folder's name."""
    group: str | None = None
    """Optional group, e.g. one per config when running several seeds."""
    tags: list[str] = field(default_factory=list)
    """Free-form tags."""
    mode: Literal["offline", "online", "disabled"] = "offline"
    """offline needs no account or network; the WANDB_MODE environment variable wins over this."""


# Spellings older wandb versions accepted in WANDB_MODE.
WANDB_MODE_ALIASES = {"dryrun": "offline", "run": "online"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, (np.floating, np.integer)):
        value = value.item()
    if hasattr(value, "item") and callable(value.item) and getattr(value, "ndim", 1) == 0:
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None if math.isnan(value) else (1e308 if value > 0 else -1e308)
    return value


def wandb_mode(cfg: WandbConfig) -> str:
    """``WANDB_MODE`` from the environment if set, else ``cfg.mode``; checked against the valid modes."""
    env = os.environ.get("WANDB_MODE", "").strip().lower()
    mode = WANDB_MODE_ALIASES.get(env, env) or cfg.mode
    if mode not in WANDB_MODES:
        raise UserError(f"WANDB_MODE={env!r} is not a wandb mode; valid: {', '.join(WANDB_MODES)}")
    return mode


class Logger:
    """``log(row)`` appends one JSON line (and logs its numbers to wandb); ``image``/``figure``/
    ``video`` save media under ``logdir/media/`` and log the files."""

    def __init__(
        self,
        logdir: str | Path,
        *,
        backend: str = "wandb",
        wandb_cfg: WandbConfig | None = None,
        config: dict[str, Any] | None = None,
        resume: bool = False,
    ) -> None:
        if backend not in ("wandb", "none"):
            raise UserError(f"unknown logger {backend!r}; valid: wandb, none")
        self.logdir = Path(logdir)
        self.media_dir = self.logdir / "media"
        self.media_dir.mkdir(parents=True, exist_ok=True)
        self._video_failed = False  # warned once that videos cannot be written
        self.metrics_path = self.logdir / "metrics.jsonl"
        self._wandb = None
        self._wandb_step = -1  # the highest step given to wandb: it drops rows logged to earlier steps
        wandb_cfg = wandb_cfg or WandbConfig()
        if backend == "wandb" and wandb_mode(wandb_cfg) != "disabled":
            self._wandb = self._start_wandb(wandb_cfg, config or {}, resume)

    # ---- wandb ------------------------------------------------------------------------------

    def _start_wandb(self, cfg: WandbConfig, config: dict[str, Any], resume: bool):
        mode = wandb_mode(cfg)
        os.environ.setdefault("WANDB_SILENT", "true")  # no banner, no sync hints, no progress bars
        import wandb

        run_id_file = self.logdir / "wandb_run_id"
        # A fresh id of our own: wandb.util.generate_id is gone in wandb 0.31.
        run_id = run_id_file.read_text().strip() if resume and run_id_file.is_file() else uuid.uuid4().hex[:8]
        settings = wandb.Settings(
            silent=True,
            console="off",  # the training loop's own prints stay in the terminal only
            disable_git=True,
            disable_code=True,
            save_code=False,
            x_disable_stats=True,  # no system-metrics sampler competing for the CPU
        )
        try:
            run = wandb.init(
                project=cfg.project,
                name=cfg.name or self.logdir.name,
                group=cfg.group,
                tags=list(cfg.tags),
                config=config,
                dir=str(self.logdir),
                mode=mode,
                id=run_id,
                resume="allow",
                settings=settings,
            )
        except wandb.errors.UsageError as err:
            raise UserError(
                f"wandb {mode} mode cannot start ({first_line(err)}); run `wandb login` or set WANDB_API_KEY, "
                "or log offline with WANDB_MODE=offline (or logger=none)"
            ) from None
        except wandb.errors.Error as err:
            raise UserError(
                f"wandb {mode} mode cannot start ({first_line(err)}); log offline with WANDB_MODE=offline "
                "and upload later with `wandb sync`"
            ) from None
        run_id_file.write_text(run_id)
        # A resumed online run starts at the step after its last one; offline runs at 0 each time.
        self._wandb_step = int(getattr(run, "step", 0) or 0)
        return run

    @property
    def wandb_run(self):
        """The live ``wandb.Run``, or None with ``logger=none`` / ``WANDB_MODE=disabled``."""
        return self._wandb

    @property
    def wandb_dir(self) -> Path | None:
        """The run's local folder (``logdir/wandb/offline-run-...`` offline), None without wandb."""
        if self._wandb is None:
            return None
        return Path(self._wandb.dir).parent  # run.dir is <run folder>/files

    def _wandb_log(self, data: dict[str, Any], step: int | None) -> None:
        if self._wandb is None or not data:
            return
        if step is not None:
            if step < self._wandb_step:
                # Rows redone after a resume: wandb keeps the first copy and would warn about this one.
                return
            self._wandb_step = step
        self._wandb.log(data, step=step)

    # ---- outputs ----------------------------------------------------------------------------

    def log(self, row: dict[str, Any], step: int | None = None) -> None:
        """Append ``row`` to metrics.jsonl; its numbers (not bools, not None) also go to wandb."""
        row = {key: _jsonable(value) for key, value in row.items()}
        with self.metrics_path.open("a") as f:
            f.write(json.dumps(row) + "\n")
        numeric = {k: v for k, v in row.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        self._wandb_log(numeric, step)

    def image(self, name: str, image: np.ndarray | str | Path, step: int) -> Path:
        """Save an image as media/<name>_<step>.png and log it.

        ``image``: (H, W, 3|4) or (H, W) uint8, or the path of an image file (copied into media/).
        """
        path = self._media_path(name, step, ".png")
        if isinstance(image, (str, Path)):
            shutil.copyfile(image, path)
        else:
            iio.imwrite(path, as_rgb_uint8(np.asarray(image), "image"))
        self._log_media(name, path, step, video=False)
        return path

    def figure(self, name: str, fig: Any, step: int, dpi: int = 100) -> Path:
        """Save a matplotlib figure as media/<name>_<step>.png and log it (the caller closes the figure)."""
        path = self._media_path(name, step, ".png")
        fig.savefig(path, dpi=dpi)
        self._log_media(name, path, step, video=False)
        return path

    def video(self, name: str, frames: np.ndarray, step: int, fps: int = 20) -> Path | None:
        """Save (T, H, W, 3) uint8 frames as media/<name>_<step>.mp4 and log the file; None (and one
        warning per run) where no mp4 can be written, e.g. without imageio-ffmpeg: a run never dies of it."""
        path = self._media_path(name, step, ".mp4")
        try:
            write_mp4(path, frames, fps=fps)
        except Exception as err:  # noqa: BLE001 - imageio raises various types for a missing backend
            if not self._video_failed:
                warnings.warn(f"cannot write videos ({err!r}); the run goes on without them", stacklevel=2)
            self._video_failed = True
            return None
        self._log_media(name, path, step, video=True)
        return path

    def _media_path(self, name: str, step: int, suffix: str) -> Path:
        return self.media_dir / f"{name.replace('/', '_')}_{step:08d}{suffix}"

    def _log_media(self, name: str, path: Path, step: int, *, video: bool) -> None:
        if self._wandb is None:
            return
        import wandb

        item = wandb.Video(str(path), format="mp4") if video else wandb.Image(str(path))
        self._wandb_log({name: item}, step)

    def close(self) -> None:
        """Finish the wandb run (offline: say where it is and how to upload it)."""
        if self._wandb is None:
            return
        run, self._wandb = self._wandb, None
        offline = run.settings.mode == "offline"
        folder = Path(run.dir).parent
        run.finish()
        if offline:
            hint = f"upload with `wandb sync {folder.parent}/offline-run-*`"
            print(f"wandb: offline run in {folder}; {hint}", file=sys.stderr)

    def __enter__(self) -> Logger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def as_rgb_uint8(array: np.ndarray, what: str) -> np.ndarray:
    """(..., H, W), (..., H, W, 1|3|4) uint8 -> (..., H, W, 3|4) uint8; floats must already be 0..255."""
    if array.dtype != np.uint8:
        if not np.issubdtype(array.dtype, np.number):
            raise TypeError(f"{what} must be numeric, got {array.dtype}")
        array = np.clip(np.rint(array), 0, 255).astype(np.uint8)
    if array.ndim >= 1 and array.shape[-1] not in (1, 3, 4):
        array = array[..., None]  # no channel axis: grey
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return array


def write_mp4(path: str | Path, frames: np.ndarray, fps: float = 20) -> Path:
    """(T, H, W, 3) uint8 -> H.264 mp4 through imageio's ffmpeg plugin (no moviepy needed).

    Odd heights/widths are padded by one black pixel row/column (H.264 in yuv420p needs even
    sizes); frames are never rescaled.
    """
    import imageio.v2 as imageio_v2

    frames = as_rgb_uint8(np.asarray(frames), "video frames")[..., :3]
    if frames.ndim != 4 or len(frames) == 0:
        raise ValueError(f"a video needs frames of shape (T, H, W, 3) with T >= 1, got {frames.shape}")
    _, H, W, _ = frames.shape
    if H % 2 or W % 2:
        frames = np.pad(frames, ((0, 0), (0, H % 2), (0, W % 2), (0, 0)))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    imageio_v2.mimwrite(path, list(frames), fps=fps, macro_block_size=1, codec="libx264", pixelformat="yuv420p")
    return path


def read_metrics(path: str | Path) -> list[dict[str, Any]]:
    """The rows of a metrics.jsonl; a last line cut short by a kill is skipped."""
    path = Path(path)
    if not path.is_file():
        return []
    rows = []
    for line in path.read_text().splitlines():
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # a partial line from a killed run: the resumed run logs that row again
    return rows


def trim_metrics(path: str | Path, keep: Callable[[dict[str, Any]], bool]) -> int:
    """Keep only the rows of metrics.jsonl for which ``keep(row)`` holds (and drop partial lines),
    rewriting the file atomically. Returns how many rows were dropped.

    On ``--resume``: ``trim_metrics(logdir / "metrics.jsonl", lambda row: row["Iteration"] < run.iteration)``.
    """
    path = Path(path)
    if not path.is_file():
        return 0
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    rows = read_metrics(path)
    kept = [row for row in rows if keep(row)]
    if len(kept) != len(lines):
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text("".join(json.dumps(row) + "\n" for row in kept))
        os.replace(tmp, path)
    return len(lines) - len(kept)
