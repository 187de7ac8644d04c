"""Does bf16 autocast train the pixel world model as fp32 does, and how much faster is it?

    python scripts/compare_train_dtype.py [--config configs/pixels_default.yaml] [--steps 300] [key=value ...]

Collects the config's seed episodes with random actions once, then trains two copies of the same initial
model, one per ``model.train_dtype``, on the same sequence of sampled chunks, and prints both loss curves
(means over windows of ``--window`` steps), the largest relative gap between them, and the median step
time of each; the last line is JSON. The decision rule of issue 8: use bf16 only where it is faster and the
curves match.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from worldmodel.agents import pixel_agent  # noqa: E402
from worldmodel.cli import parse_with_overrides  # noqa: E402
from worldmodel.config import load_config  # noqa: E402
from worldmodel.cpu import tune_cpu  # noqa: E402
from worldmodel.errors import UserError  # noqa: E402
from worldmodel.models.world_model import batch_to_torch  # noqa: E402

DTYPES = ("float32", "bfloat16")
CURVE_KEYS = ("total_loss", "recon_loss", "reward_loss", "kl")


def train_curves(run, steps: int, window: int, seed: int) -> dict[str, dict]:
    """Train a copy of the run's initial model per dtype on the same chunks -> {dtype: curves and timing}."""
    cfg = run.cfg.train
    results = {}
    for dtype in DTYPES:
        model = copy.deepcopy(run.world_model)  # the same initial weights and a fresh optimizer, its own config
        model.cfg.train_dtype = dtype
        rng = np.random.default_rng(seed)  # the same chunks for both
        torch.manual_seed(seed)  # the same dequantisation noise and posterior samples
        rows, seconds = [], []
        for _ in range(steps):
            batch = batch_to_torch(run.replay.sample(cfg.batch_size, cfg.chunk_length, rng), run.device)
            started = time.perf_counter()
            metrics = model.train_step(batch)
            rows.append({key: float(metrics[key]) for key in CURVE_KEYS})
            seconds.append(time.perf_counter() - started)
        curves = {key: [float(np.mean([r[key] for r in rows[i : i + window]])) for i in range(0, steps, window)]
                  for key in CURVE_KEYS}
        results[dtype] = {"curves": curves, "step_ms": 1e3 * float(np.median(seconds[2:] or seconds))}
        print(f"{dtype}: {results[dtype]['step_ms']:.0f} ms per step; total_loss by window "
              + " ".join(f"{x:.1f}" for x in curves["total_loss"]), flush=True)
    return results


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], epilog=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", type=Path, help="pixel config (default: the CPU default)")
    parser.add_argument("--steps", type=int, default=300, help="gradient steps per dtype (default 300)")
    parser.add_argument("--window", type=int, default=25, help="steps per point of the curves (default 25)")
    parser.add_argument("overrides", nargs="*", metavar="key.sub=value")
    args = parse_with_overrides(parser, argv)
    if args.steps < 1 or args.window < 1:
        parser.error("--steps and --window must be >= 1")
    tune_cpu()  # as the run loop does
    try:
        cfg = load_config(pixel_agent.PixelAgentConfig, args.config, list(args.overrides) + ["logger=none"])
        run = pixel_agent.prepare(cfg, None)
    except UserError as err:
        sys.exit(f"error: {err}")
    try:
        pixel_agent.warm_up(run)
    finally:
        run.close()
    results = train_curves(run, args.steps, args.window, cfg.seed)
    fp32, bf16 = (results[d]["curves"]["total_loss"] for d in DTYPES)
    gap = max(abs(b - f) / abs(f) for f, b in zip(fp32, bf16))
    summary = {
        "steps": args.steps,
        "window": args.window,
        "max_relative_gap_total_loss": gap,
        "speedup": results["float32"]["step_ms"] / results["bfloat16"]["step_ms"],
        **{f"{d}_step_ms": results[d]["step_ms"] for d in DTYPES},
        "curves": {d: results[d]["curves"] for d in DTYPES},
    }
    print(f"largest relative gap between the total-loss curves: {100 * gap:.1f}%; bf16 speedup "
          f"{summary['speedup']:.2f}x", flush=True)
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
