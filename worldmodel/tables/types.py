"""What a reproduction table is made of: its scales, its runs, its rows and the published columns beside them.

    Table(name="planet", agent="pixels", source="...", scales=(Scale("cpu", ...), ...),
          columns=(Column("PlaNet", "CURL Table 1"), ...), runs=(Run(...), ...), rows=(Row(...), ...))

A run is trained once per seed (``DIR/<run>_seed<N>``); a row reads one metric of a run's metrics rows, at
an iteration, at an env step count, or at its end (``worldmodel.tables.results.row_value``), and sits beside
the published figures of the table's columns. A table may also redraw the source's figures from its runs
(``Curves``: a metric over the iterations).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

from worldmodel.errors import UserError

Figure = tuple[float | None, float | None]
"""A published (mean, std); std None where the source gives none."""


@dataclass(frozen=True)
class Scale:
    """One size of a table's runs: the config they use (unless a run names its own), the seeds run by
    default, and a note for table.md. The overrides a scale adds are each run's (``Run.scales``)."""

    name: str
    seeds: tuple[int, ...] = (0,)
    """Seeds run when --seeds is not given."""
    config: str | None = None
    """The config file of the runs that name none (a path from the repository root)."""
    note: str = ""
    """What to keep in mind when comparing this scale's values with the published ones."""


@dataclass(frozen=True)
class Column:
    """A published figure beside ours: its header and where it comes from."""

    name: str
    source: str


@dataclass(frozen=True)
class Run:
    """One configuration of a table, run once per seed."""

    name: str
    config: str | None = None
    """Config file (from the repository root); None: the scale's."""
    overrides: tuple[str, ...] = ()
    """Overrides at every scale."""
    scales: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    """Extra overrides by scale name (a scale not named adds none)."""
    aliases: tuple[str, ...] = ()
    """Other names --tasks accepts for this run (e.g. the env's own name)."""

    def overrides_at(self, scale: str) -> tuple[str, ...]:
        return (*self.overrides, *self.scales.get(scale, ()))


@dataclass(frozen=True)
class Row:
    """One line of a table: a metric of a run at a point of its training, and the published figures."""

    name: str
    run: str
    label: str
    published: Mapping[str, Figure] = field(default_factory=dict, hash=False)
    """Published (mean, std) by column name; a column not named shows nothing."""
    metric: str = "AverageReturn"
    iteration: int | None = None
    """Read this iteration's row (the state agent's ``Iteration``)."""
    env_steps: int | None = None
    """Read the last row with the metric whose env_steps is at most this (the evaluation nearest below it)."""
    scales: tuple[str, ...] | None = None
    """The scales whose table shows this row; None: all."""


@dataclass(frozen=True)
class Curves:
    """One of the source's figures: a metric of some of the table's runs over their iterations, mean ± std over
    the seeds, drawn as ``DIR/<name>.png`` (``worldmodel.tables.results.plot_curves``)."""

    name: str
    """The file's stem."""
    title: str
    runs: tuple[str, ...]
    """The runs drawn, one curve each."""
    metric: str = "AverageReturn"
    negate: bool = False
    """Draw minus the metric (seed 000's average cost, minus the return)."""


@dataclass(frozen=True)
class Budgets:
    """A table's runs as points of return against compute: each run's final ``AverageReturn`` (mean ± std over
    the seeds) at x = its planning budget, one line per group, drawn as ``DIR/<name>.png``
    (``worldmodel.tables.results.plot_budgets``)."""

    name: str
    """The file's stem."""
    title: str
    points: tuple[tuple[str, str, int], ...]
    """(group, run, budget): the line a run belongs to and its x."""
    xlabel: str = "action sequences a planner call (model rollouts per action)"


Finding = tuple[str, Callable[[dict[str, float], float | None], bool]]
"""(claim, check(means by row name, the random policy's return: None where the runs log none))."""


@dataclass(frozen=True)
class Table:
    name: str
    agent: str
    """Which agent trains the runs: state or pixels."""
    source: str
    """Where the published figures come from, for table.md."""
    scales: tuple[Scale, ...]
    """The first is the default."""
    columns: tuple[Column, ...]
    """Published figures beside ours; the first is each row's ``reference`` in table.json."""
    runs: tuple[Run, ...]
    rows: tuple[Row, ...]
    findings: tuple[Finding, ...] = field(default=())
    """The source's findings, checked on our means."""
    curves: tuple[Curves, ...] = field(default=())
    """The source's figures, redrawn from our runs (one PNG each)."""
    budgets: tuple[Budgets, ...] = field(default=())
    """Return against planning budget (one PNG each)."""

    def scale(self, name: str) -> Scale:
        for scale in self.scales:
            if scale.name == name:
                return scale
        valid = ", ".join(scale.name for scale in self.scales)
        raise UserError(f"table {self.name} has no scale {name!r}; valid: {valid}")

    def pick_runs(self, names: list[str] | None) -> tuple[Run, ...]:
        """The runs --tasks names (by name or alias), in the table's order; all of them for None."""
        if names is None:
            return self.runs
        if not names:
            raise UserError(f"--tasks needs at least one task; valid: {', '.join(run.name for run in self.runs)}")
        known = {alias: run.name for run in self.runs for alias in (run.name, *run.aliases)}
        unknown = [name for name in names if name not in known]
        if unknown:
            valid = ", ".join(run.name for run in self.runs)
            raise UserError(f"table {self.name} has no task {unknown[0]!r}; valid: {valid}")
        picked = {known[name] for name in names}
        return tuple(run for run in self.runs if run.name in picked)

    def rows_for(self, scale: str, runs: tuple[Run, ...]) -> tuple[Row, ...]:
        """The rows shown at ``scale`` whose run is among ``runs``."""
        names = {run.name for run in runs}
        return tuple(r for r in self.rows if r.run in names and (r.scales is None or scale in r.scales))
