"""CPU settings that make torch's hot loops faster: glibc keeping freed memory and denormals flushed to zero
(``tune_cpu``, applied by the run loop and the benchmarks), the cache-sized row chunks both planners' rollouts
run in, and whether this CPU has bf16 instructions.

Why keep freed memory: glibc hands every freed block above its mmap threshold back to the kernel, so the next tensor
of that size is page-faulted in afresh, page by page. The planner and the training step allocate
and free tensors of a few MB hundreds of times per call: on the project's CPU a chain of three
elementwise ops on 8000 x 200 floats took 8.6 ms that way and 1.4 ms with the memory kept
(torch's CPU tuning guide recommends jemalloc or tcmalloc for the same reason; this needs neither).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

import torch

CPU_CHUNK_ROWS = 2000
"""Rollouts per chunk on a CPU, so a chunk's activations stay in cache. State planner (5 x 2x250, 15 envs x 1000
candidates): one batch 59 GFLOP/s, chunks of 500 / 1000 / 2000 rows 106 / 126 / 131. Latent planner (PlaNet
sizes, 8 envs): chunks of 1000 / 2000 / 4000 rows 74% / 75% / 64% of the matmul peak."""


def row_chunks(rows: int, device: torch.device) -> list[slice]:
    """The slices of ``rows`` rollouts to run together: chunks of ``CPU_CHUNK_ROWS`` on a CPU, all at once elsewhere."""
    chunk = CPU_CHUNK_ROWS if device.type == "cpu" else rows
    return [slice(start, start + chunk) for start in range(0, rows, chunk)]


# ---- glibc keeping freed memory ----------------------------------------------------------------------

_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_KEEP_BYTES = 1 << 30  # blocks up to 1 GiB come from (and return to) the heap; trimming waits for 1 GiB free

_applied = False


def tune_cpu() -> None:
    """The run loop's and the benchmarks' CPU settings: glibc keeps freed memory, and denormal floats are
    flushed to zero. Why the second: bf16 training on real frames made denormals somewhere in the step, and
    x86 handles them in microcode; flushed, the CPU default model's training step went from 204 to 166 ms
    (fp32: 246 to 234 ms; ``scripts/compare_train_dtype.py --steps 60``, the same losses to 0.1)."""
    keep_freed_memory()
    torch.set_flush_denormal(True)  # False (and no change) where the CPU cannot


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep freed memory for reuse. Returns whether it applied (Linux with glibc only);
    elsewhere it does nothing. Safe to call more than once."""
    global _applied
    if _applied:
        return True
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (e.g. musl): leave the allocator alone
        return False
    _applied = bool(mallopt(_M_MMAP_THRESHOLD, _KEEP_BYTES)) and bool(mallopt(_M_TRIM_THRESHOLD, _KEEP_BYTES))
    return _applied


# ---- bf16 ------------------------------------------------------------------------------------------------

def has_native_bf16() -> bool:
    """Does this CPU have bf16 dot-product instructions (avx512_bf16, or AMX)? With them oneDNN's bf16
    convolutions run at about twice the fp32 rate (this project's CPU: 470 against 230 GFLOP/s); without them
    it emulates bf16, slowly. torch's own CPU feature checks, the ones inductor uses."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
