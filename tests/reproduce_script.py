"""scripts/reproduce.py loaded once as a module for the table tests (tests/test_reproduce*.py), and its ``main`` on
the CPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    if "reproduce" in sys.modules:  # another test module loaded it already
        return sys.modules["reproduce"]
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


reproduce = load_script()


def call(*args: str) -> int:
    return reproduce.main([*args, "--device", "cpu"])
