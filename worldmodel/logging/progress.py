"""Progress of one phase (training steps, an episode): a live tqdm bar on a terminal, one line when
the phase ends otherwise, nothing with ``--quiet``.

tqdm redraws its bar with carriage returns; in a log file (a sweep's trial, ``> train.log``, CI)
that is thousands of frames per run. So the bar is live only when stderr is a terminal.

    for _ in progress(range(steps), desc="train dynamics", unit="step"):
        ...
    with progress(total=T, desc="collect episode 3", unit="step") as bar:
        bar.update(1)

prints ``train dynamics: 500 steps in 12.3s`` to stderr at the end of the phase when not on a terminal.
"""

from __future__ import annotations

import sys
import time
from typing import Any, Iterable, Iterator

_quiet = False


def set_quiet(quiet: bool) -> None:
    """``--quiet``: no bars and no phase lines (the per-iteration summary lines stay)."""
    global _quiet
    _quiet = quiet


def progress(iterable: Iterable | None = None, *, total: int | None = None, desc: str = "", unit: str = "it"):
    """A tqdm bar when stderr is a terminal, else a ``PhaseLine`` (silent when quiet)."""
    if not _quiet and sys.stderr.isatty():
        from tqdm import tqdm

        return tqdm(iterable, total=total, desc=desc, leave=False, unit=unit)
    return PhaseLine(iterable, desc=desc, unit=unit, silent=_quiet)


class PhaseLine:
    """The parts of tqdm's interface the agents use (iterate, ``update``, context manager, ``close``),
    printing ``desc: N units in S s`` once, when the phase ends."""

    def __init__(self, iterable: Iterable | None = None, *, desc: str = "", unit: str = "it", silent: bool = False):
        self.iterable = iterable
        self.desc = desc
        self.unit = unit
        self.silent = silent
        self.n = 0
        self.started = time.perf_counter()
        self.closed = False

    def __iter__(self) -> Iterator[Any]:
        try:
            for item in self.iterable:
                yield item
                self.n += 1
        finally:
            self.close()

    def update(self, n: int = 1) -> None:
        self.n += n

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        if not self.silent:
            seconds = time.perf_counter() - self.started
            units = self.unit if self.n == 1 else f"{self.unit}s"
            print(f"{self.desc}: {self.n} {units} in {seconds:.1f}s", file=sys.stderr, flush=True)

    def __enter__(self) -> PhaseLine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
