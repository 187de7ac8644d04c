"""scripts/estimate_state_run.py: the planner calls and training steps a whole run makes, counted from
the config, and a timed estimate on the smoke config."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

from worldmodel.agents.state_agent import StateAgentConfig
from worldmodel.config import load_config

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    spec = importlib.util.spec_from_file_location("estimate_state_run", ROOT / "scripts" / "estimate_state_run.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["estimate_state_run"] = module
    spec.loader.exec_module(module)
    return module


estimate = load_script()


@pytest.mark.parametrize(
    "config, calls",
    [
        ("state_default.yaml", 5 * 1 * 1000),  # 4 MPC episodes in 4 envs: one batch a iteration
        ("state_halfcheetah_cem.yaml", 5 * 1000),  # 5 collected + 10 evaluated in 15 envs; the last collects none
        ("state_halfcheetah_rs.yaml", 15 * 1000),
        ("state_smoke.yaml", 2 * 50),
        ("state_mujoco.yaml", 19 * 1000),  # 4 episodes in 4 envs reach mpc_steps 4000 at the time limit
    ],
)
def test_a_run_calls_the_planner_once_per_env_step_of_each_batch(config, calls):
    cfg = load_config(StateAgentConfig, ROOT / "configs" / config)
    assert estimate.planner_calls(cfg, cfg.env.episode_length or 1000) == calls  # null: the env's own limit


def test_mpc_steps_add_batches_until_reached():
    cfg = load_config(StateAgentConfig, ROOT / "configs" / "state_smoke.yaml", ["train.mpc_steps=250"])
    assert estimate.planner_calls(cfg, 50) == 2 * 3 * 50  # 2 episodes of 50, then batches of 2 to 300 >= 250


def test_more_episodes_than_envs_take_more_batches():
    cfg = load_config(StateAgentConfig, ROOT / "configs" / "state_smoke.yaml", ["train.mpc_episodes=5"])
    assert estimate.planner_calls(cfg, 50) == 2 * 3 * 50  # 5 episodes in 2 envs: 3 batches of 50 steps


def test_the_estimate_is_printed_with_its_json_last(capsys):
    assert estimate.main(["--config", str(ROOT / "configs" / "state_smoke.yaml"), "--calls", "1"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["planner_calls"] == 100 and result["train_steps"] == 2 * 50
    assert result["plan_s_per_call"] > 0 and result["estimate_h"] > 0
