"""The pixel benchmark runs end to end on CPU in its quick mode and ends with one JSON line of figures."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "bench_pixels.py"
KEYS = {"plan_ms_1env", "plan_ms_8env", "plan_gflops", "peak_gflops", "train_step_ms", "env_fps_1", "env_fps_8",
        "e2e_env_steps_per_s", "device"}


def test_quick_cpu_run_prints_every_figure_as_json_last():
    env = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "OMP_NUM_THREADS": "1"}
    smoke = str(ROOT / "configs" / "pixels_smoke.yaml")
    command = [sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--config", smoke, "planner.candidates=16"]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.strip().splitlines()
    figures = json.loads(lines[-1])
    assert KEYS <= set(figures), KEYS - set(figures)
    assert figures["device"] == "cpu"
    for key in KEYS - {"device"}:
        assert isinstance(figures[key], float) and figures[key] > 0, (key, figures[key])
    assert any("fp32 matmul peak" in line for line in lines[:-1])
    assert figures["e2e_agent_steps"] == 2  # the quick run's short episode
