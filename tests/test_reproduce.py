"""scripts/reproduce.py on tiny settings: the table's runs and files, skipping finished runs,
resuming an interrupted one, and bad input refused before anything is written."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import pytest
import yaml

from worldmodel.agents import state_agent
from worldmodel.agents.state_agent import StateAgentConfig
from worldmodel.config import load_config

from resume_checks import without_timing  # tests/resume_checks.py

from reproduce_script import call, reproduce  # tests/reproduce_script.py

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
    # The findings, worked out here from the table's own means and random-policy returns.
    means = {row["name"]: row["mean"] for row in table["rows"]}
    randoms = [row["random_policy_return"] for row in table["rows"]]
    assert all(isinstance(r, float) for r in randoms)
    random = sum(randoms) / len(randoms)
    assert table["findings"] == {
        "cem > rs > random policy": means["cem"] > means["rs"] > random,
        "cem_h1 far below rs and cem (below the random policy)": means["cem_h1"] < random,
        "cem_k50 between rs and cem": means["rs"] < means["cem_k50"] < means["cem"],
    }
    assert (tiny_table / "table.md").read_text().count("| ") > 10
    assert (tiny_table / "returns.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
def test_second_call_skips_finished_runs(tiny_table, capsys):
    before = metrics_text(tiny_table)
    assert call("seed001", "--scale", "lite", "--out", str(tiny_table), *TINY) == 0
    assert metrics_text(tiny_table) == before
    assert "sweep: 4 of 4 trials finished earlier, skipped" in capsys.readouterr().out
    trials = json.loads((tiny_table / "sweep.json").read_text())["trials"]
    assert {name: (t["status"], t["attempts"]) for name, t in trials.items()} == dict.fromkeys(trials, ("done", 1))


@pytest.mark.slow
def test_interrupted_run_resumes_where_it_stopped(tmp_path, monkeypatch):
    """A table run stopped by Ctrl-C in its second iteration (in this process, with the very config and
    overrides the table gives it); the table's next call resumes it through the sweep's trial runner rather
    than redoing it: its first row kept byte for byte, no random-policy episodes collected again in its
    process, and the same rows as an uninterrupted run of its config; the other run is trained anew."""
    out = tmp_path / "t"
    seed000_tiny = [o for o in TINY if not o.startswith(("train.eval", "train.iterations"))] + ["train.iterations=2"]
    run = next(r for r in reproduce.SEED000.runs if r.name == "rs_nodelta")
    overrides = reproduce.run_overrides(run, 0, "lite", "cpu", seed000_tiny)
    real_train = state_agent.train_dynamics

    def interrupt_the_second_iteration(state_run):
        if state_run.iteration == 1:
            raise KeyboardInterrupt  # as Ctrl-C: the run saves its checkpoint and stops
        return real_train(state_run)

    monkeypatch.setattr(state_agent, "train_dynamics", interrupt_the_second_iteration)
    with pytest.raises(KeyboardInterrupt):
        state_agent.main(config_path=ROOT / run.config, overrides=overrides, logdir=out / "rs_nodelta_seed0")
    monkeypatch.setattr(state_agent, "train_dynamics", real_train)
    first = metrics_text(out)["rs_nodelta_seed0"]
    assert len(first.splitlines()) == 1

    tasks = ["--seeds", "0", "--tasks", "rs", "rs_nodelta"]
    assert call("seed000", "--scale", "lite", "--out", str(out), *tasks, *seed000_tiny) == 0
    log = (out / "logs" / "rs_nodelta_seed0.log").read_text()
    assert "--resume" in log.splitlines()[0], log.splitlines()[0]  # "== attempt 1: ... --resume ..."
    warm_up = [line for line in log.splitlines() if line.startswith("random ")]  # "random 1/1: ..." and "random policy: ..."
    assert not warm_up, f"the run collected its random-policy episodes again: {warm_up}"
    assert "random policy:" in (out / "logs" / "rs_seed0.log").read_text()  # the other run started anew
    after = metrics_text(out)
    assert after["rs_nodelta_seed0"].startswith(first), "row 0 rewritten (a redo?)"
    rows = [json.loads(line) for line in after["rs_nodelta_seed0"].splitlines()]
    assert [row["Iteration"] for row in rows] == [0, 1]  # resumed, no duplicated row
    names = [row["name"] for row in json.loads((out / "table.json").read_text())["rows"]]
    assert names[:4] == ["rs_itr0", "rs_itr0_mse", "rs_nodelta_itr0", "rs_nodelta_itr0_mse"]
    # The CPU is deterministic: an uninterrupted run of the same config logs the same values.
    whole = state_agent.main(config_path=out / "rs_nodelta_seed0" / "config.yaml", logdir=tmp_path / "whole")
    uninterrupted = [json.loads(line) for line in (whole / "metrics.jsonl").read_text().splitlines()]
    assert without_timing(rows) == without_timing(uninterrupted), "resumed != uninterrupted"


def finding_rows(means: dict[str, float | None], randoms: tuple[float, ...] = (-300.0,)) -> list[dict]:
    """Table rows as ``table_rows`` gives them: the means by name, the random-policy returns spread over them."""
    rows = [{"name": name, "mean": mean, "random_policy_return": None} for name, mean in means.items()]
    for row, random in zip(rows, randoms):
        row["random_policy_return"] = random
    return rows


SEED001_CLAIMS = ["cem > rs > random policy", "cem_h1 far below rs and cem (below the random policy)",
                  "cem_k50 between rs and cem"]
SEED001_MEANS = {"rs": 800.0, "cem": 2000.0, "cem_h1": -20000.0, "cem_k50": 1200.0}


@pytest.mark.parametrize(
    "change, expected",
    [
        ({}, (True, True, True)),  # the seed's own ordering
        ({"rs": -400.0}, (False, True, True)),  # rs below the random policy
        ({"cem": 700.0, "cem_k50": 750.0}, (False, True, False)),  # cem below rs
        ({"cem_h1": 0.0}, (True, False, True)),  # horizon 1 above the random policy
        ({"cem_k50": 2100.0}, (True, True, False)),  # 50 candidates better than 1000
        ({"cem_k50": 700.0}, (True, True, False)),  # 50 candidates worse than random shooting
    ],
)
def test_check_findings_on_means_with_known_answers(change, expected):
    """check_findings on hand-made means: each of seed 001's claims holds or fails as it should."""
    rows = finding_rows({**SEED001_MEANS, **change})
    assert reproduce.check_findings(reproduce.SEED001, rows) == dict(zip(SEED001_CLAIMS, expected))


def test_check_findings_averages_the_random_policy_and_waits_for_missing_rows():
    seed000 = reproduce.SEED000
    means = {"rs_itr0": -250.0, "rs_itr0_mse": 0.3, "rs_nodelta_itr0": 100.0, "rs_nodelta_itr0_mse": 0.5}
    claim = "rs_itr0 > random policy"
    # The random policy's return is the mean over the rows that measured one: -300 here, then -200. (The
    # findings on rows these means leave out are not measured.)
    assert reproduce.check_findings(seed000, finding_rows(means, (-100.0, -500.0)))[claim] is True
    assert reproduce.check_findings(seed000, finding_rows(means, (-100.0, -300.0)))[claim] is False
    assert reproduce.check_findings(seed000, finding_rows({**means, "rs_itr0": -150.0}, (-100.0, -300.0)))[claim] is True
    # Not measured yet: a row without a mean, or no random-policy return at all.
    assert reproduce.check_findings(seed000, finding_rows({**means, "rs_nodelta_itr0": None}))[claim] is None
    assert reproduce.check_findings(seed000, finding_rows(means, ()))[claim] is None
    assert reproduce.check_findings(reproduce.SEED001, finding_rows({**SEED001_MEANS, "cem": None})) == dict.fromkeys(
        SEED001_CLAIMS
    )


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
        assert (cfg.model.ensemble_size, cfg.model.learning_rate, cfg.train.batch_size) == (3, 1e-3, 512)
        assert not cfg.train.keep_mse_data and not cfg.train.collect_after_last
    for cfg in (rs, cem):
        assert (cfg.model.hidden_size, cfg.model.num_layers, cfg.train.train_steps) == (250, 2, 1500)
        assert (cfg.planner.candidates, cfg.planner.horizon) == (1000, 15)
        # 5,000 random steps, then 5,000 MPC steps per iteration, 10 evaluation episodes of 1000 steps
        assert (cfg.train.random_episodes, cfg.train.mpc_episodes, cfg.train.eval_episodes) == (5, 5, 10)
    assert (rs.planner.kind, rs.train.iterations) == ("rs", 15)
    assert (cem.planner.kind, cem.train.iterations) == ("cem", 5)
    assert (cem.planner.iterations, cem.planner.elites, cem.planner.alpha, cem.planner.init) == (4, 5, 1.0, "uniform")
    assert (zero.model.hidden_size, zero.model.num_layers, zero.train.train_steps) == (32, 1, 500)
    assert zero.train.random_episodes * zero.env.episode_length == 20_000
    assert (zero.train.iterations, zero.train.eval_episodes) == (1, 0)
    # The ablations are overrides named in the CEM config's comment.
    text = (CONFIGS / "state_halfcheetah_cem.yaml").read_text()
    assert "planner.horizon=1" in text and "planner.candidates=50" in text


SEED000_MEANS = {
    "rs_itr0": 300.0, "rs_itr0_mse": 0.3, "rs_nodelta_itr0": 250.0, "rs_nodelta_itr0_mse": 0.4,
    "rs_final": 1000.0, "rs_final_mse": 0.1, "rs_noagg_final": 500.0, "rs_noagg_final_mse": 0.2,
    "rs_nodelta_final": 800.0, "bptt": -100.0, "guided": 1500.0, "dagger": 200.0,
    "rs_act_ms": 50.0, "guided_act_ms": 55.0, "bptt_act_ms": 0.5, "dagger_act_ms": 0.5,
}
SEED000_CLAIMS = [
    "rs_itr0 > random policy",
    "aggregation lowers the DynamicsMSE (Fig. 2)",
    "delta normalisation helps (Fig. 5)",
    "bptt below rs (Fig. 6: noisy and poor)",
    "bptt acts 10x faster than rs or more (section 4)",
    "guided > rs (Fig. 7: much improved)",
    "dagger below rs (section 6: too little exploration)",
]


@pytest.mark.parametrize(
    "change, broken",
    [
        ({}, None),  # the seed's findings, all of them
        ({"rs_itr0": -400.0}, 0),
        ({"rs_final_mse": 0.3}, 1),  # aggregation worse than none
        ({"rs_nodelta_final": 1100.0}, 2),
        ({"bptt": 1100.0}, 3),
        ({"bptt_act_ms": 6.0}, 4),  # only 8x faster
        ({"guided": 900.0}, 5),
        ({"dagger": 1200.0}, 6),
    ],
)
def test_seed000_findings_on_means_with_known_answers(change, broken):
    """Each of seed 000's findings fails exactly when the means it compares say otherwise."""
    found = reproduce.check_findings(reproduce.SEED000, finding_rows({**SEED000_MEANS, **change}))
    assert found == {claim: i != broken for i, claim in enumerate(SEED000_CLAIMS)}


def test_seed000_scales_follow_the_seed():
    """full: the seed's settings over 15 on-policy iterations (its iteration 0 as before: 1172 training steps on
    the 10,000 random transitions); lite: shorter episodes, 6 iterations, 3 seeds; each run's own setting."""
    table = reproduce.SEED000
    assert [run.name for run in table.runs] == ["rs", "rs_nodelta", "rs_noagg", "bptt", "guided", "dagger"]
    assert [(scale.name, scale.seeds) for scale in table.scales] == [
        ("full", (0, 1, 2)), ("lite", (0, 1, 2)), ("smoke", (0,))
    ]
    for scale, episode, iterations in (("full", 1000, 15), ("lite", 250, 6)):
        planned = {trial.name: cfg for trial, cfg in reproduce.plan_trials(table, scale, table.runs, [0], "cpu", [])}
        for cfg in planned.values():
            assert (cfg.env.id, cfg.env.episode_length, cfg.train.iterations) == ("cheetah-cs285", episode, iterations)
            assert (cfg.planner.kind, cfg.model.ensemble_size, cfg.env.num_envs) == ("rs", 1, 10)
            assert cfg.train.keep_mse_data and cfg.train.collect_after_last and cfg.train.eval_episodes in (0, 5)
        assert {name: cfg.policy.kind for name, cfg in planned.items()} == {
            "rs_seed0": "none", "rs_nodelta_seed0": "none", "rs_noagg_seed0": "none",
            "bptt_seed0": "bptt", "guided_seed0": "guided", "dagger_seed0": "dagger",
        }
        assert not planned["rs_noagg_seed0"].train.aggregate and planned["rs_seed0"].train.aggregate
        assert not planned["rs_nodelta_seed0"].model.delta_norm and planned["rs_seed0"].model.delta_norm
        bptt = planned["bptt_seed0"].policy
        assert (bptt.hidden_size, bptt.num_layers, bptt.horizon, bptt.batch_size) == (32, 2, 50, 512)
        rs = planned["rs_seed0"]
        if scale == "full":
            assert (rs.model.hidden_size, rs.planner.candidates, rs.train.epochs) == (500, 1000, 60)
            assert math.ceil(rs.train.epochs * 10 * 1000 / rs.train.batch_size) == 1172
        else:
            assert (rs.model.hidden_size, rs.planner.candidates, rs.train.epochs, rs.train.train_steps) == (
                250, 250, 0, 500
            )


def test_run_folder_from_before_the_policy_section_is_accepted(tmp_path):
    """A run folder saved before the policy section (and train.aggregate, train.epochs) existed is the same run as a
    policy.kind=none one, so a table resumes it; a saved bptt run is not."""
    from worldmodel.config import save_config, to_dict

    cfg = load_config(StateAgentConfig, CONFIGS / "state_halfcheetah_rs.yaml")
    logdir = tmp_path / "rs_seed0"
    logdir.mkdir()
    old = to_dict(cfg)
    del old["policy"], old["train"]["aggregate"], old["train"]["epochs"]
    (logdir / "config.yaml").write_text(yaml.safe_dump(old))
    reproduce.check_run_folder(logdir, cfg)  # no error
    bptt = load_config(StateAgentConfig, CONFIGS / "state_halfcheetah_rs.yaml", ["policy.kind=bptt"])
    save_config(bptt, logdir / "config.yaml")
    with pytest.raises(reproduce.UserError, match="differs in: policy"):
        reproduce.check_run_folder(logdir, cfg)


@pytest.mark.slow
def test_seed000_smoke_writes_every_row_and_figure(tmp_path):
    """reproduce.py seed000 --scale smoke: all six runs, every row (the iteration-0 ones and the new ones) read from
    their metrics, and one PNG per figure, each linked from table.md."""
    out = tmp_path / "seed000"
    assert call("seed000", "--scale", "smoke", "--out", str(out)) == 0
    table = json.loads((out / "table.json").read_text())
    rows = {row["name"]: row for row in table["rows"]}
    assert list(rows) == [row.name for row in reproduce.SEED000.rows]
    assert {"bptt", "guided", "dagger", "rs_itr0", "rs_itr0_mse", "rs_nodelta_itr0", "rs_nodelta_itr0_mse"} <= set(rows)
    for spec in reproduce.SEED000.rows:
        logged = [json.loads(line) for line in (out / f"{spec.run}_seed0" / "metrics.jsonl").read_text().splitlines()]
        assert [r["Iteration"] for r in logged] == [0, 1]
        expected = logged[0 if spec.iteration == 0 else -1][spec.metric]
        assert rows[spec.name]["values"] == [expected], spec.name
    assert rows["rs_itr0"]["reference"] == 317.0 and rows["rs_itr0_mse"]["reference"] == 0.291
    figures = [f"{curves.name}.png" for curves in reproduce.SEED000.curves]
    assert table["figures"] == figures and len(figures) == 7
    text = (out / "table.md").read_text()
    for name in ["returns.png", *figures]:
        assert (out / name).read_bytes()[:4] == b"\x89PNG", name
        assert f"]({name})" in text, name
    assert set(table["findings"]) == set(SEED000_CLAIMS)


def test_curves_read_each_iteration_of_each_seed_and_skip_runs_without_data(tmp_path):
    """curve_points gathers a run's metric per iteration over the seeds that logged it; plot_curves draws the
    figures some picked run has data for, and no others."""
    from worldmodel.tables.results import curve_points, plot_curves
    from worldmodel.tables.types import Curves, Run

    logged = {0: [{"Iteration": 0, "DynamicsMSE": 1.0}, {"Iteration": 1, "DynamicsMSE": 0.5}],
              1: [{"Iteration": 0, "DynamicsMSE": 3.0}, {"Iteration": 1}]}  # seed 1 logged no MSE at iteration 1
    for seed, rows in logged.items():
        (tmp_path / f"rs_seed{seed}").mkdir()
        (tmp_path / f"rs_seed{seed}" / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert curve_points(tmp_path, "rs", [0, 1], "DynamicsMSE") == {0: [1.0, 3.0], 1: [0.5]}
    assert curve_points(tmp_path, "bptt", [0, 1], "DynamicsMSE") == {}
    table = dataclasses.replace(
        reproduce.SEED000,
        curves=(Curves("mse", "MSE", ("rs", "bptt"), "DynamicsMSE"), Curves("none", "nothing", ("bptt",))),
    )
    assert plot_curves(tmp_path, table, (Run("rs"), Run("bptt")), [0, 1]) == [("MSE", "mse.png")]
    assert (tmp_path / "mse.png").read_bytes()[:4] == b"\x89PNG" and not (tmp_path / "none.png").exists()
    assert plot_curves(tmp_path, table, (Run("bptt"),), [0, 1]) == []  # rs not picked (--tasks)
