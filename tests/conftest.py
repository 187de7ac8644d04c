"""Fixtures several test files share."""

from __future__ import annotations

import os

# Headless rendering, as `make test` sets it: mujoco reads MUJOCO_GL once, at its first import, and
# the first test to import it may not be one that renders.
os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture
def one_torch_thread():
    """Tiny models run fastest on one thread; with two, a busy second core makes every step ~50x slower.
    A file opts in with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
