#!/usr/bin/env python
"""Turn several runs into the seeds' table: mean and std of the final AverageReturn per config,
and a return-per-iteration plot.

    python scripts/report.py runs/rs_seed1 runs/rs_seed2 runs/cem_seed1 runs/cem_seed2 --out report.md

Runs are grouped by their config.yaml with the seed (and wandb, logger, device) left out; each
group is labelled by the settings that tell it apart from the others. The markdown table is
printed and written to --out; the plot goes next to it (--plot to choose), the numbers and the
curves to --json if given. ``train/sweep.py`` writes the same report for its trials.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.errors import UserError  # noqa: E402
from worldmodel.report import write_report  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (each with config.yaml and metrics.jsonl)")
    parser.add_argument(
        "--out", type=Path, default=Path("report.md"), help="markdown file for the table (default: report.md)"
    )
    parser.add_argument("--plot", type=Path, help="return-per-iteration plot (default: --out with .png)")
    parser.add_argument("--json", type=Path, help="also write the rows and the curves as JSON here")
    parser.add_argument("--csv", type=Path, help="also write the curves (mean and std per step) as CSV here")
    args = parser.parse_args(argv)
    try:
        report = write_report(args.runs, args.out, plot=args.plot, json_out=args.json, csv_out=args.csv)
    except UserError as err:
        raise SystemExit(f"error: {err}") from None
    print(report["table"], end="")
    written = [args.out, args.plot or args.out.with_suffix(".png")] + [p for p in (args.json, args.csv) if p]
    print(f"wrote {', '.join(map(str, written))}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
