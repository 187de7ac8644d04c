#!/usr/bin/env python
"""Train a model-based RL agent: ``python train/agent.py --help`` (the command line is ``worldmodel.cli``).

  python train/agent.py --obs state                       # ensemble MPC on HalfCheetah-v5 (CPU default)
  python train/agent.py --obs state --config configs/state_smoke.yaml --logdir runs/smoke logger=none
  python train/agent.py --obs pixels --env dmc:cartpole-swingup
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from worldmodel.cli import build_parser, flag_overrides, interrupt_once_on_sigint_or_sigterm, main  # noqa: E402, F401

if __name__ == "__main__":
    interrupt_once_on_sigint_or_sigterm()
    sys.exit(main())
