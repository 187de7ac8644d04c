"""Compose model frames into pictures people can look at: numpy in, uint8 HWC / THWC out.

- ``recon_grid``: true frames in the top row, the model's reconstructions below.
- ``openl_video``: Dreamer's open-loop view, rows of truth / model / error over time, one
  column per sampled sequence.
- ``side_by_side``: two videos next to each other (a real episode beside its reconstruction).
- ``save_loss_curve``: a training loss per gradient step, log scale, as a png.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from einops import rearrange


def to_hwc(frames: np.ndarray) -> np.ndarray:
    """(..., C, H, W) -> (..., H, W, C), uint8."""
    return np.ascontiguousarray(np.moveaxis(np.asarray(frames), -3, -1)).astype(np.uint8, copy=False)


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour upscaling of (..., H, W, C) images: 64x64 frames are tiny in a browser."""
    if factor == 1:
        return images
    return images.repeat(factor, axis=-3).repeat(factor, axis=-2)


def error_frames(truth: np.ndarray, model: np.ndarray) -> np.ndarray:
    """Signed difference as an image: mid-grey where the model is right (Dreamer's ``(model - truth + 1) / 2``)."""
    diff = model.astype(np.int16) - truth.astype(np.int16)  # in [-255, 255]
    return ((diff + 255) // 2).astype(np.uint8)


def recon_grid(truth: np.ndarray, recon: np.ndarray, scale: int = 1) -> np.ndarray:
    """``truth`` and ``recon`` (N, C, H, W) uint8 -> one image (2H, N*W, C): truth over reconstruction."""
    assert truth.shape == recon.shape and truth.ndim == 4, (truth.shape, recon.shape)
    rows = np.stack([truth, recon])  # (2, N, C, H, W)
    grid = rearrange(rows, "r n c h w -> (r h) (n w) c")
    return upscale(np.ascontiguousarray(grid, dtype=np.uint8), scale)


def openl_video(truth: np.ndarray, model: np.ndarray, scale: int = 1) -> np.ndarray:
    """Open-loop view: ``truth`` and ``model`` (B, T, C, H, W) uint8 -> video (T, 3H, B*W, C).

    Rows are truth, model and error; the B sequences sit side by side. The caller decides which
    first frames were context (posterior) and which imagination (prior).
    """
    assert truth.shape == model.shape and truth.ndim == 5, (truth.shape, model.shape)
    rows = np.stack([truth, model, error_frames(truth, model)])  # (3, B, T, C, H, W)
    video = rearrange(rows, "r b t c h w -> t (r h) (b w) c")
    return upscale(np.ascontiguousarray(video, dtype=np.uint8), scale)


def side_by_side(*videos: np.ndarray, scale: int = 1) -> np.ndarray:
    """Videos (T, C, H, W) uint8 of equal shape -> one video (T, H, n*W, C), left to right."""
    assert len({v.shape for v in videos}) == 1, [v.shape for v in videos]
    joined = rearrange(np.stack(videos), "n t c h w -> t h (n w) c")
    return upscale(np.ascontiguousarray(joined, dtype=np.uint8), scale)


def episode_video(frames: np.ndarray, scale: int = 1) -> np.ndarray:
    """Frames (T, C, H, W) uint8 of one env -> a video (T, H, W, C)."""
    return upscale(to_hwc(frames), scale)


def save_loss_curve(losses: np.ndarray, path: Path, iteration: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(losses)
    ax.set_yscale("log")
    ax.set_xlabel("gradient step")
    ax.set_ylabel("normalised delta MSE (mean over members)")
    ax.set_title(f"dynamics loss, iteration {iteration}")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
