"""Checkpoints: atomic save/load round trip, and one clear line for every way a file can be bad,
both from the library and from ``train/agent.py --resume``."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from worldmodel.checkpoint import load_checkpoint, save_checkpoint
from worldmodel.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def sample_state() -> dict:
    model = torch.nn.Linear(4, 3)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    model(torch.randn(2, 4)).sum().backward()
    optimizer.step()
    generator = torch.Generator().manual_seed(7)
    torch.rand(3, generator=generator)
    rng = np.random.default_rng(5)
    rng.random(4)
    return {
        "kind": "state",
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "replay": {"obs": np.arange(24, dtype=np.uint8).reshape(2, 3, 4), "reward": np.linspace(0, 1, 5)},
        "counters": {"iteration": 3, "env_steps": 1200, "random_return": None},
        "rng": {
            "numpy": rng.bit_generator.state,
            "generator": generator.get_state(),
            "torch": torch.get_rng_state(),
            "python": random.getstate(),
        },
    }


def assert_same(a, b) -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            assert_same(x, y)
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b) and a.dtype == b.dtype
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b) and a.dtype == b.dtype
    else:
        assert a == b


def test_round_trip_keeps_tensors_arrays_and_rng_states(tmp_path):
    state = sample_state()
    path = save_checkpoint(tmp_path / "checkpoint.pt", state)
    loaded = load_checkpoint(path, kind="state")
    assert_same(state, loaded)
    # The RNG states really restore the streams.
    generator = torch.Generator().manual_seed(0)
    generator.set_state(loaded["rng"]["generator"])
    expected = torch.Generator().manual_seed(0)
    expected.set_state(state["rng"]["generator"])
    assert torch.equal(torch.rand(5, generator=generator), torch.rand(5, generator=expected))
    rng = np.random.default_rng()
    rng.bit_generator.state = loaded["rng"]["numpy"]
    rng_expected = np.random.default_rng()
    rng_expected.bit_generator.state = state["rng"]["numpy"]
    assert np.array_equal(rng.random(4), rng_expected.random(4))


def test_save_is_atomic_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    path = tmp_path / "checkpoint.pt"
    save_checkpoint(path, {"kind": "state", "counters": {"iteration": 1}})
    good = path.read_bytes()

    def killed_mid_write(obj, f, *args, **kwargs):
        f.write(b"PK\x03\x04 half a checkpoint")
        raise KeyboardInterrupt  # as if Ctrl-C / a kill landed while writing

    monkeypatch.setattr(torch, "save", killed_mid_write)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(path, {"kind": "state", "counters": {"iteration": 2}})
    assert path.read_bytes() == good  # the last good checkpoint is intact
    assert [p.name for p in tmp_path.iterdir()] == ["checkpoint.pt"]  # no temporary left behind
    monkeypatch.undo()
    assert load_checkpoint(path)["counters"] == {"iteration": 1}


def one_line_error(call) -> str:
    with pytest.raises(UserError) as info:
        call()
    message = str(info.value)
    assert message and "\n" not in message
    return message


def test_truncated_file_is_one_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", sample_state())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    message = one_line_error(lambda: load_checkpoint(path))
    assert "truncated or corrupted" in message and str(path) in message


# Seeds whose 4 KiB of random bytes make torch.load raise, in turn: UnpicklingError, UnicodeDecodeError,
# OverflowError, ValueError, MemoryError.
@pytest.mark.parametrize("seed", [0, 35, 38, 73, 215])
def test_garbage_file_is_one_clear_error(tmp_path, seed):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(np.random.default_rng(seed).bytes(4096))
    assert "truncated or corrupted" in one_line_error(lambda: load_checkpoint(path))


def test_empty_file_is_one_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    path.write_bytes(b"")
    assert "truncated or corrupted" in one_line_error(lambda: load_checkpoint(path))


def test_missing_file_is_one_clear_error(tmp_path):
    assert "not found" in one_line_error(lambda: load_checkpoint(tmp_path / "nothing.pt"))


def test_wrong_kind_is_one_clear_error(tmp_path):
    path = save_checkpoint(tmp_path / "checkpoint.pt", {"kind": "pixels"})
    message = one_line_error(lambda: load_checkpoint(path, kind="state"))
    assert "'pixels'" in message and "'state'" in message


def test_foreign_torch_file_is_one_clear_error(tmp_path):
    path = tmp_path / "checkpoint.pt"
    torch.save({"model": torch.zeros(3)}, path)  # a valid torch file, but not one of ours
    assert "not written by this version" in one_line_error(lambda: load_checkpoint(path))


def write_state_run(logdir: Path) -> None:
    """A run folder as the state agent leaves it (its config; the caller adds the checkpoint)."""
    logdir.mkdir(parents=True)
    (logdir / "config.yaml").write_text((REPO / "configs" / "state_smoke.yaml").read_text())


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_cli_resume_with_a_corrupted_checkpoint_exits_2_with_one_line(tmp_path, damage):
    logdir = tmp_path / "run"
    write_state_run(logdir)
    checkpoint = logdir / "checkpoint.pt"
    if damage == "truncated":
        data = save_checkpoint(checkpoint, sample_state()).read_bytes()
        checkpoint.write_bytes(data[: len(data) // 3])
    else:
        checkpoint.write_bytes(b"this is not a checkpoint\n" * 50)
    before = sorted(p.name for p in logdir.iterdir())
    result = subprocess.run(
        [sys.executable, str(REPO / "train" / "agent.py"), "--obs", "state", "--resume", str(logdir), "logger=none"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: checkpoint") and "truncated or corrupted" in lines[0]
    assert "Traceback" not in result.stderr
    assert sorted(p.name for p in logdir.iterdir()) == before  # nothing written to the run folder
