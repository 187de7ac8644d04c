"""What every planner shares: the action box, the generator, the warm-start memory and its rules, the
first mean and the elite selection.

Shapes: B planning problems (one per environment), N candidate sequences, J elites, L horizon, A action dim.

The memory is a few tensors with B rows (the previous plan's mean, iCEM's kept elites). It is forgotten
on ``reset()`` (episode boundaries) and ignored when a call plans for another number of rows; when some
envs of a batch finish mid-batch, ``keep_rows(index)`` keeps the rows of those still running, in order.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from worldmodel.planning.config import PlannerConfig

Objective = Callable[[Tensor], Tensor]
"""actions (B, N, L, A) -> predicted returns (B, N)."""


class Planner:
    """The interface of every planner, which maximises ``objective`` over action sequences in [low, high]:

    >>> plan = planner.plan(objective, batch_size=B)   # (B, L, A); execute plan[:, 0]
    >>> planner.keep_rows(torch.tensor([0, 2]))         # envs 0 and 2 go on: keep their warm starts
    >>> planner.reset()                                 # new episodes: forget every warm start
    """

    def __init__(
        self,
        cfg: PlannerConfig,
        low: Tensor,
        high: Tensor,
        *,
        generator: torch.Generator | None = None,
    ) -> None:
        self.cfg = cfg
        self.low = low  # (A,)
        self.high = high  # (A,)
        self.generator = generator
        self._memory: dict[str, Tensor] = {}  # name -> (B, ...), what the next call may start from

    @property
    def device(self) -> torch.device:
        return self.low.device

    def plan(self, objective: Objective, batch_size: int) -> Tensor:
        """Return the optimised action sequences (B, L, A); execute ``[:, 0]``."""
        raise NotImplementedError

    def reset(self) -> None:
        """Forget the previous plan (call at episode boundaries)."""
        self._memory.clear()

    def keep_rows(self, index: Tensor) -> None:
        """Keep only rows ``index`` (B',) of the warm-start memory, in that order: the next call plans for
        B' envs, row i warm-started from the old row ``index[i]``."""
        self._memory = {name: rows.index_select(0, index.to(rows.device)) for name, rows in self._memory.items()}

    def remember(self, name: str, rows: Tensor) -> None:
        self._memory[name] = rows

    def recall(self, name: str, batch_size: int) -> Tensor | None:
        """The remembered ``name`` if it was kept for ``batch_size`` rows, else None: a stale memory of
        another batch would fail to broadcast (larger) or broadcast wrongly (smaller)."""
        rows = self._memory.get(name)
        return rows if rows is not None and rows.shape[0] == batch_size else None

    def first_mean(self, batch_size: int) -> tuple[Tensor, bool]:
        """-> (the first mean (B, L, A), whether it is warm): the box centre, or with ``warm_start`` the
        previous mean shifted by one step, the centre repeated at the end."""
        centre = (self.high + self.low) / 2  # (A,)
        mean = centre.expand(batch_size, self.cfg.horizon, centre.shape[0]).clone()  # (B, L, A)
        previous = self.recall("mean", batch_size) if self.cfg.warm_start else None
        if previous is not None:
            mean[:, :-1] = previous[:, 1:]
        return mean, previous is not None


def top_elites(actions: Tensor, returns: Tensor, elites: int) -> tuple[Tensor, Tensor]:
    """actions (B, N, L, A), returns (B, N) -> the ``elites`` best sequences (B, J, L, A), best first, and
    their returns (B, J). A diverged rollout (NaN) is never an elite, whatever the sign of the returns."""
    B, _, L, A = actions.shape
    returns = returns.nan_to_num(nan=-torch.inf, posinf=torch.inf, neginf=-torch.inf)  # one kernel
    best = returns.topk(elites, dim=1)  # sorted, best first
    chosen = actions.gather(1, best.indices[:, :, None, None].expand(B, elites, L, A))  # (B, J, L, A)
    return chosen, best.values
