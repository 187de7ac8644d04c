"""Run-folder files that load without executing anything, written atomically.

Two files per run folder, both written with every checkpoint:

- ``checkpoint.pt``: the resumable run state (weights, optimiser, data, random streams, counters);
- ``policy.pt``: what acting needs and nothing more (the agent, its resolved config, the model's sizes,
  its weights with the normalisation statistics inside), so that a trained agent can be loaded or
  handed to someone else without the data.

Both are ``torch.save`` files of tensors, numpy arrays of numbers and plain Python data, loaded with
``torch.load(weights_only=True)``: a file that would need any other Python object to be built (a pickle
that runs code when loaded) is refused with one ``UserError`` and nothing in it is executed. Writes go to a
temporary file in the same folder, fsync, then rename, so a kill at any moment leaves the last good file
intact.
"""

from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from worldmodel.errors import UserError

try:
    from numpy._core.multiarray import _reconstruct
except ImportError:  # numpy 1.x
    from numpy.core.multiarray import _reconstruct

FORMAT_VERSION = 1
POLICY_NAME = "policy.pt"

# Beyond torch's own allowlist (tensors, dicts, lists, numbers, strings): numpy arrays of plain numeric
# dtypes (the pixel replay's frames; an empty one pickles its data as ``bytes()``). An object array would
# need further globals, which stay refused.
_NUMERIC_DTYPES = (np.bool_, np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32, np.uint64, np.int64,
                   np.float16, np.float32, np.float64)
SAFE_GLOBALS = [_reconstruct, np.ndarray, np.dtype, bytes, *(type(np.dtype(t)) for t in _NUMERIC_DTYPES)]


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> Path:
    """Save ``state`` (tensors, numpy arrays, plain python) atomically to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {"format_version": FORMAT_VERSION, "state": state}
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # what open() would give: mkstemp's 0600 stops a shared folder
        with os.fdopen(fd, "wb") as f:
            torch.save(payload, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def load_checkpoint(path: str | Path, *, kind: str | None = None) -> dict[str, Any]:
    """Load a file saved by ``save_checkpoint``, executing nothing; any problem is one clear ``UserError``.

    ``kind`` (e.g. "state" or "pixels"), when given, must match ``state["kind"]``.
    """
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path}")
    payload = safe_load(path)
    if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
        raise UserError(f"checkpoint {path} was not written by this version of worldmodel (format {FORMAT_VERSION})")
    state = payload["state"]
    if kind is not None and state.get("kind") != kind:
        raise UserError(f"checkpoint {path} holds a {state.get('kind')!r} agent, not a {kind!r} one")
    return state


def safe_load(path: Path) -> Any:
    """``torch.load`` that builds only tensors, numeric arrays and plain data; anything else is a UserError."""
    try:
        with warnings.catch_warnings(), torch.serialization.safe_globals(SAFE_GLOBALS):
            warnings.simplefilter("ignore")  # torch's notes on foreign pickle protocols: the error below says it
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001 - every failure is the file's: say which kind
        unsafe = executable_globals(path)
        if unsafe:
            raise UserError(
                f"checkpoint {path} holds Python objects that loading would have to run ({', '.join(unsafe[:3])}); "
                "refused: a run folder holds only tensors, arrays and plain data"
            ) from None
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise UserError(f"checkpoint {path} is truncated or corrupted ({reason}); delete it to start over") from None


def executable_globals(path: Path) -> list[str]:
    """The Python names (functions, classes) a torch zip file asks to call, beyond what loads safely;
    read from its pickle without running it. Not a zip file, or unreadable: []."""
    if not zipfile.is_zipfile(path):
        return []
    allowed = {f"{g.__module__}.{g.__qualname__}" for g in SAFE_GLOBALS}
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # noqa: BLE001 - a damaged archive: reported as corrupted
        return []
    return [name for name in names if name not in allowed]


def load_policy(path: str | Path, *, kind: str | None) -> dict[str, Any]:
    """A ``policy.pt`` (``path`` itself, or ``path/policy.pt`` for a run folder) of a ``kind`` agent (any
    kind if None) -> its ``kind``, ``config`` (plain dict), ``sizes`` and ``weights``; runs nothing."""
    path = Path(path)
    file = path / POLICY_NAME if path.is_dir() else path
    if path.is_dir() and not file.is_file():
        raise UserError(
            f"{path} holds no {POLICY_NAME} yet: a run writes it with every checkpoint (a run of an older "
            f"worldmodel writes it when continued once: train/agent.py --resume {path})"
        )
    state = load_checkpoint(file, kind=kind)
    if not {"config", "sizes", "weights"} <= state.keys():
        raise UserError(f"{file} is a training checkpoint, not a policy file; pass the run's {POLICY_NAME}")
    return state
