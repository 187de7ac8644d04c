"""scripts/reproduce.py on tiny settings: the table's runs and files, skipping finished runs,
resuming an interrupted one, and bad input refused before anything is written."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import yaml

from worldmodel.agents import state_agent
from worldmodel.agents.state_agent import StateAgentConfig
from worldmodel.config import load_config

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
TINY = [
    "env.episode_length=12",
    "env.num_envs=2",
    "model.hidden_size=16",
    "model.train_steps=3",
    "model.batch_size=16",
    "planner.candidates=8",
    "planner.elites=2",
    "planner.iterations=2",
    "train.iterations=2",
    "train.random_episodes=2",
    "train.mpc_episodes=2",
    "train.eval_episodes=2",
    "logger=none",
]


def load_script():
    spec = importlib.util.spec_from_file_location("reproduce", ROOT / "scripts" / "reproduce.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["reproduce"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


reproduce = load_script()


def call(*args: str) -> int:
    return reproduce.main([*args, "--device", "cpu"])


def metrics_text(out: Path) -> dict[str, str]:
    return {p.parent.name: p.read_text() for p in sorted(out.glob("*/metrics.jsonl"))}


@pytest.fixture(scope="module")
def tiny_table(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("reproduce") / "seed001"
    assert call("seed001", "--scale", "lite", "--out", str(out), *TINY) == 0
    return out


@pytest.mark.slow
def test_table_json_schema_and_run_folders(tiny_table):
    table = json.loads((tiny_table / "table.json").read_text())
    assert table["table"] == "seed001" and table["scale"] == "lite"
    assert isinstance(table["wall_s"], float) and table["wall_s"] > 0
    assert [row["name"] for row in table["rows"]] == ["rs", "cem", "cem_h1", "cem_k50"]
    references = {"rs": 873.31, "cem": 2302.62, "cem_h1": -22422.16, "cem_k50": 1282.38}
    for row in table["rows"]:
        assert isinstance(row["mean"], float) and isinstance(row["std"], float)
        assert row["seeds"] == 1 and row["std"] == 0.0
        assert row["reference"] == references[row["name"]]
    for name in references:
        logdir = tiny_table / f"{name}_seed0"
        rows = [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]
        assert [row["Iteration"] for row in rows] == [0, 1]
        assert (logdir / "checkpoint.pt").is_file() and (logdir / "itr_1_loss_curve.png").is_file()
    saved = yaml.safe_load((tiny_table / "cem_h1_seed0" / "config.yaml").read_text())
    assert saved["planner"]["horizon"] == 1 and saved["env"]["id"] == "cheetah-cs285"
    assert len(table["findings"]) == 3 and all(isinstance(ok, bool) for ok in table["findings"].values())
    assert (tiny_table / "table.md").read_text().count("| ") > 10
    assert (tiny_table / "returns.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_second_call_skips_finished_runs(tiny_table, capsys):
    before = metrics_text(tiny_table)
    assert call("seed001", "--scale", "lite", "--out", str(tiny_table), *TINY) == 0
    assert metrics_text(tiny_table) == before
    assert capsys.readouterr().out.count("finished, skipped") == 4


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    out = tmp_path / "t"
    real_train = state_agent.train_dynamics

    def interrupt_second_nodelta_iteration(run):
        if run.iteration == 1 and not run.cfg.model.delta_norm:
            raise KeyboardInterrupt  # as Ctrl-C: the run saves its checkpoint and stops
        return real_train(run)

    seed000_tiny = [o for o in TINY if not o.startswith(("train.eval", "train.iterations"))] + ["train.iterations=2"]
    monkeypatch.setattr(state_agent, "train_dynamics", interrupt_second_nodelta_iteration)
    assert call("seed000", "--scale", "lite", "--out", str(out), *seed000_tiny) == 130
    first = metrics_text(out)
    assert len(first["rs_nodelta_seed0"].splitlines()) == 1
    monkeypatch.setattr(state_agent, "train_dynamics", real_train)
    assert call("seed000", "--scale", "lite", "--out", str(out), *seed000_tiny) == 0
    after = metrics_text(out)
    assert after["rs_seed0"] == first["rs_seed0"]  # finished: untouched
    iterations = [json.loads(line)["Iteration"] for line in after["rs_nodelta_seed0"].splitlines()]
    assert iterations == [0, 1]  # resumed, no duplicated row
    names = [row["name"] for row in json.loads((out / "table.json").read_text())["rows"]]
    assert names == ["rs_itr0", "rs_itr0_mse", "rs_nodelta_itr0", "rs_nodelta_itr0_mse"]


def test_bad_input_is_one_error_line(tmp_path, capsys):
    assert call("seed999", "--out", str(tmp_path / "a")) == 2
    assert "unknown table 'seed999'" in capsys.readouterr().err
    assert call("seed001", "--seeds", "--out", str(tmp_path / "b")) == 2
    assert "--seeds needs at least one seed" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_out_inside_or_holding_another_table_is_refused(tmp_path, capsys):
    table = tmp_path / "t"
    table.mkdir()
    (table / reproduce.MARKER).write_text(json.dumps({"table": "seed000", "scale": "full"}))
    assert call("seed001", "--out", str(table)) == 2
    assert "holds table seed000" in capsys.readouterr().err
    assert call("seed001", "--out", str(table / "rs_seed0" / "x")) == 2
    assert "lies inside" in capsys.readouterr().err
    assert sorted(p.name for p in table.iterdir()) == [reproduce.MARKER]


def test_run_folder_with_another_config_is_refused(tmp_path, capsys):
    out = tmp_path / "t"
    logdir = out / "rs_seed0"
    logdir.mkdir(parents=True)
    other = load_config(StateAgentConfig, CONFIGS / "state_halfcheetah_rs.yaml", ["planner.horizon=3"])
    from worldmodel.config import save_config

    save_config(other, logdir / "config.yaml")
    before = (logdir / "config.yaml").read_text()
    assert call("seed001", "--out", str(out)) == 2
    err = capsys.readouterr().err
    assert "different config" in err and "planner" in err
    assert (logdir / "config.yaml").read_text() == before
    assert sorted(p.name for p in out.iterdir()) == ["rs_seed0"]  # no marker, no table written


def test_configs_follow_seed_001():
    rs = load_config(StateAgentConfig, CONFIGS / "state_halfcheetah_rs.yaml")
    cem = load_config(StateAgentConfig, CONFIGS / "state_halfcheetah_cem.yaml")
    zero = load_config(StateAgentConfig, CONFIGS / "state_halfcheetah_0_iter.yaml")
    for cfg in (rs, cem, zero):
        assert cfg.env.id == "cheetah-cs285" and cfg.env.episode_length == 1000
        assert (cfg.model.ensemble_size, cfg.model.learning_rate, cfg.model.batch_size) == (3, 1e-3, 512)
        assert not cfg.train.keep_mse_data and not cfg.train.collect_after_last
    for cfg in (rs, cem):
        assert (cfg.model.hidden_size, cfg.model.num_layers, cfg.model.train_steps) == (250, 2, 1500)
        assert (cfg.planner.candidates, cfg.planner.horizon) == (1000, 15)
        # 5,000 random steps, then 5,000 MPC steps per iteration, 10 evaluation episodes of 1000 steps
        assert (cfg.train.random_episodes, cfg.train.mpc_episodes, cfg.train.eval_episodes) == (5, 5, 10)
    assert (rs.planner.kind, rs.train.iterations) == ("rs", 15)
    assert (cem.planner.kind, cem.train.iterations) == ("cem", 5)
    assert (cem.planner.iterations, cem.planner.elites, cem.planner.alpha, cem.planner.init) == (4, 5, 1.0, "uniform")
    assert (zero.model.hidden_size, zero.model.num_layers, zero.model.train_steps) == (32, 1, 500)
    assert zero.train.random_episodes * zero.env.episode_length == 20_000
    assert (zero.train.iterations, zero.train.eval_episodes) == (1, 0)
    # The ablations are overrides named in the CEM config's comment.
    text = (CONFIGS / "state_halfcheetah_cem.yaml").read_text()
    assert "planner.horizon=1" in text and "planner.candidates=50" in text
