"""Atomic checkpoints: write to a temporary file in the same folder, fsync, then rename, so a
kill at any moment leaves the last good checkpoint intact."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

from worldmodel.errors import UserError

FORMAT_VERSION = 1


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Save ``state`` (tensors, numpy arrays, plain python) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "state": state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Load a checkpoint saved by ``save_checkpoint``; any problem is one clear ``UserError``.

    ``kind`` (e.g. "state" or "pixels"), when given, must match ``state["kind"]``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # noqa: BLE001 - any failure to unpickle means the file is damaged
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupted ({reason}); delete it to start over") from None
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} was not written by this version of worldmodel (format {FORMAT_VERSION})")
    state = payload["state"]
    if kind is not None and state.get("kind") != kind:
        raise UserError(f"checkpoint {path} holds a {state.get('kind')!r} agent, not a {kind!r} one")
    return state
