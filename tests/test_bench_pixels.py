"""The pixel benchmark runs end to end on CPU in its quick mode and ends with one JSON line of figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_pixels.py"
KEYS = {"plan_ms_1env", "plan_ms_8env", "plan_gflops", "peak_gflops", "train_step_ms", "env_fps_1", "env_fps_8",
        "e2e_env_steps_per_s", "device"}


@pytest.mark.slow
def test_quick_cpu_run_prints_every_figure_as_json_last():
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}
    smoke = str(ROOT / "configs" / "pixels_smoke.yaml")
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--config", smoke, "planner.candidates=16",
               "--env", "dmc:walker-walk"]  # another task than the config's (cartpole), as train/agent.py --env
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert KEYS <= set(figures), KEYS - set(figures)
    assert figures["device"] == "cpu" and figures["env"] == "dmc:walker-walk"
    for key in KEYS - {"device"}:
        assert isinstance(figures[key], float) and figures[key] > 0, (key, figures[key])
    assert any("fp32 matmul peak" in line for line in lines[:-1])
    assert figures["e2e_agent_steps"] == 2  # the quick run's short episode


@pytest.mark.slow
def test_gpu_measure_script_returns_the_bench_and_the_run_under_out(tmp_path):
    """scripts/gpu_measure.sh, the one device command for the GPU figures, at tiny sizes on the CPU."""
    out = tmp_path / "out"
    env = {
        **os.environ,
        "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"),
        "OMP_NUM_THREADS": "1",
        "DEVICE": "cpu",
        "CONFIG": "configs/pixels_smoke.yaml",
        "BENCH_ARGS": "--quick planner.candidates=16",
        "RUN_ARGS": "train.episodes=2 train.seed_episodes=1",
        "RUN_DIR": str(tmp_path / "run"),
        "OUT": str(out),
        "PYTHON": sys.executable,
    }
    result = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_measure.sh")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    figures = json.loads((out / "bench.txt").read_text().strip().splitlines()[-1])
    assert KEYS <= set(figures) and figures["device"] == "cpu"
    rows = [json.loads(line) for line in (out / "seed0_metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["episode"] == 2 and "wall_time" in rows[-1]
    assert "seed: 0" in (out / "seed0_config.yaml").read_text()
    assert "run exit 0" in result.stdout
