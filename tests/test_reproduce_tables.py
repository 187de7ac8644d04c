"""scripts/reproduce.py's planet, mujoco and dmc_state tables (worldmodel/tables/): the smoke runs and their
tables, each task at its PlaNet action repeat, the cpu and gpu presets, resuming an unfinished table, and where a row's
figure is read."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from worldmodel.agents.pixel_config import PixelAgentConfig
from worldmodel.config import load_config
from worldmodel.envs.pixels import resolved_action_repeat
from worldmodel.tables import DMC_STATE_TABLE, MUJOCO_TABLE, PLANET_TABLE, PLANNERS_PIXELS_TABLE, PLANNERS_TABLE
from worldmodel.tables.results import row_value
from worldmodel.tables.types import Row

from reproduce_script import call, reproduce  # tests/reproduce_script.py

ROOT = Path(__file__).resolve().parents[1]
# PlaNet's action repeats (Hafner et al. 2019), as the issue gives them.
PLANET_REPEAT = {
    "cartpole-swingup": 8, "reacher-easy": 4, "cheetah-run": 4, "finger-spin": 2, "cup-catch": 4, "walker-walk": 2,
}
SMOKE_AGENT_STEPS = 3 * 12  # the smoke scale: 3 episodes of 12 agent steps
PUBLISHED_COLUMNS = ["PlaNet", "Dreamer", "DreamerV3"]
# Two of the four bodies (one that never terminates, one that does) keep the smoke test short.
MUJOCO_SMOKE_TASKS = ["HalfCheetah-v5", "Hopper-v5"]
MUJOCO_TASKS = ["HalfCheetah-v5", "Hopper-v5", "Walker2d-v5", "Ant-v5"]


def table_rows(out: Path) -> dict[str, dict]:
    return {row["name"]: row for row in json.loads((out / "table.json").read_text())["rows"]}


def metrics(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def two_tasks(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("planet") / "smoke"
    assert call("planet", "--scale", "smoke", "--tasks", "cartpole-swingup", "finger-spin", "--out", str(out)) == 0
    return out


def check_task_runs(out: Path, tasks: list[str]) -> None:
    """Each task's run at its PlaNet action repeat (resolved config.yaml and env steps logged), and its row:
    the run's last evaluation, where it was read, the published columns."""
    rows = table_rows(out)
    assert list(rows) == tasks
    for task in tasks:
        logdir = out / f"{task}_seed0"
        cfg = load_config(PixelAgentConfig, logdir / "config.yaml")
        assert resolved_action_repeat(cfg.env) == PLANET_REPEAT[task], task
        logged = metrics(logdir)
        assert logged[-1]["env_steps"] == SMOKE_AGENT_STEPS * PLANET_REPEAT[task], task
        row = rows[task]
        assert row["mean"] == logged[-1]["AverageReturn"] and row["seeds"] == 1
        assert row["env_steps"] == 100_000 and row["env_steps_read"] == [logged[-1]["env_steps"]]
        assert list(row["published"]) == PUBLISHED_COLUMNS
        assert row["reference"] == row["published"]["PlaNet"]["mean"]


def test_planet_smoke_two_tasks(two_tasks):
    check_task_runs(two_tasks, ["cartpole-swingup", "finger-spin"])
    rows = table_rows(two_tasks)
    assert rows["cartpole-swingup"]["published"]["PlaNet"] == {"mean": 297, "std": 39}
    assert rows["finger-spin"]["published"] == {
        "PlaNet": {"mean": 136, "std": 216},
        "Dreamer": {"mean": 341, "std": 70},
        "DreamerV3": {"mean": 493.4, "std": 87.6},
    }
    table = json.loads((two_tasks / "table.json").read_text())
    assert (table["table"], table["scale"], table["tasks"]) == ("planet", "smoke", ["cartpole-swingup", "finger-spin"])
    assert [column["name"] for column in table["columns"]] == PUBLISHED_COLUMNS
    text = (two_tasks / "table.md").read_text()
    assert "| PlaNet | Dreamer | DreamerV3 |" in text and "297 ± 39" in text and "arXiv 2004.04136" in text
    assert (two_tasks / "returns.png").read_bytes()[:4] == b"\x89PNG"


def test_resume_redoes_no_finished_run(two_tasks, tmp_path, capsys):
    """A table stopped before one run finished: the next call trains that run and leaves the finished one alone."""
    out = tmp_path / "smoke"
    shutil.copytree(two_tasks, out)
    shutil.rmtree(out / "finger-spin_seed0")  # killed before its first checkpoint
    state = json.loads((out / "sweep.json").read_text())
    state["trials"]["finger-spin_seed0"]["status"] = "interrupted"
    (out / "sweep.json").write_text(json.dumps(state))
    finished = (out / "cartpole-swingup_seed0" / "metrics.jsonl").read_text()

    assert call("planet", "--scale", "smoke", "--tasks", "cartpole-swingup", "finger-spin", "--out", str(out)) == 0
    assert "sweep: 1 of 2 trials finished earlier, skipped" in capsys.readouterr().out
    assert (out / "cartpole-swingup_seed0" / "metrics.jsonl").read_text() == finished
    assert (out / "logs" / "cartpole-swingup_seed0.log").read_text().count("== attempt") == 1
    assert (out / "logs" / "finger-spin_seed0.log").read_text().count("== attempt") == 2
    trials = json.loads((out / "sweep.json").read_text())["trials"]
    assert {name: (t["status"], t["attempts"]) for name, t in trials.items()} == {
        "cartpole-swingup_seed0": ("done", 1), "finger-spin_seed0": ("done", 2)
    }
    check_task_runs(out, ["cartpole-swingup", "finger-spin"])


@pytest.mark.slow
def test_planet_smoke_all_six_tasks(two_tasks, tmp_path):
    """The whole table at smoke scale (the two tasks run above are skipped): six rows, PlaNet's order."""
    out = tmp_path / "smoke"
    shutil.copytree(two_tasks, out)
    assert call("planet", "--scale", "smoke", "--out", str(out)) == 0
    check_task_runs(out, list(PLANET_REPEAT))
    text = (out / "table.md").read_text()
    assert all(f"(`{task}`)" in text for task in PLANET_REPEAT)


@pytest.mark.parametrize(
    "scale, episodes, config", [("cpu", 100, "pixels_cartpole_100k_cpu.yaml"), ("gpu", 500, "pixels_planet.yaml")]
)
def test_planet_presets_run_each_task_at_its_action_repeat(scale, episodes, config):
    """cpu: the CPU cartpole preset on every task to 100k env steps, 2 envs at once and 90 gradient steps an
    episode (cartpole-swingup: the preset's own 1 env and 70 steps; finger-spin plans with iCEM); gpu: PlaNet's
    sizes to 500k, evaluated at 100k and 500k. Episodes are 1000 env steps whatever the repeat (1000 / R agent
    steps)."""
    planned = reproduce.plan_trials(PLANET_TABLE, scale, PLANET_TABLE.runs, [0], "cpu", [])
    preset = load_config(PixelAgentConfig, ROOT / "configs" / config)
    assert [trial.name for trial, _ in planned] == [f"{task}_seed0" for task in PLANET_REPEAT]
    for trial, cfg in planned:
        task = trial.name.removesuffix("_seed0")
        assert trial.config == str(ROOT / "configs" / config) and trial.obs == "pixels"
        assert resolved_action_repeat(cfg.env) == PLANET_REPEAT[task], task
        assert cfg.env.max_episode_steps is None and cfg.train.episodes == episodes
        assert cfg.model == preset.model
        icem = scale == "cpu" and task == "finger-spin"
        assert cfg.planner == (replace(preset.planner, kind="icem") if icem else preset.planner), task
        steps_per_episode = cfg.train.train_steps / cfg.env.num_envs
        two_envs = scale == "cpu" and task != "cartpole-swingup"
        assert steps_per_episode == (90 if two_envs else preset.train.train_steps), task
        assert cfg.env.num_envs == (2 if two_envs else preset.env.num_envs), task
        assert 100 % cfg.train.eval_every == 0 and episodes % cfg.train.eval_every == 0  # evaluated at 100k (and 500k)
    assert planned[4][1].env.id == "dmc:ball_in_cup-catch"
    rows = [row.name for row in PLANET_TABLE.rows_for(scale, PLANET_TABLE.runs)]
    assert rows[:6] == list(PLANET_REPEAT)
    assert rows[6:] == ([f"{task}_500k" for task in PLANET_REPEAT] if scale == "gpu" else [])


def test_row_at_env_steps_reads_the_evaluation_nearest_below():
    row = Row("t", "t", "t", env_steps=100_000)
    rows = [
        {"env_steps": 90_000, "AverageReturn": 1.0},
        {"env_steps": 95_000, "train_return": 7.0},  # no evaluation here
        {"env_steps": 100_000, "AverageReturn": 2.0},
        {"env_steps": 110_000, "AverageReturn": 3.0},
    ]
    assert row_value(rows, row) == (2.0, None, 100_000)
    assert row_value([rows[0], rows[1], rows[3]], row) == (1.0, None, 90_000)  # 110k is past it
    assert row_value(rows[1:2] + rows[3:], row) is None
    # State runs from before env_steps was logged count in EnvSteps; StdReturn is the spread within a run.
    old = [{"EnvSteps": 50_000, "AverageReturn": 5.0, "StdReturn": 0.5}, {"EnvSteps": 150_000, "AverageReturn": 6.0}]
    assert row_value(old, row) == (5.0, 0.5, 50_000)
    assert row_value(old, Row("t", "t", "t")) == (6.0, None, 150_000)  # no env_steps: the last row


def test_bad_scale_or_task_is_one_error_line(tmp_path, capsys):
    assert call("planet", "--scale", "lite", "--out", str(tmp_path / "a")) == 2
    assert "table planet has no scale 'lite'; valid: cpu, gpu, smoke" in capsys.readouterr().err
    assert call("planet", "--scale", "smoke", "--tasks", "cartpole", "--out", str(tmp_path / "b")) == 2
    assert "table planet has no task 'cartpole'" in capsys.readouterr().err
    # An override after --tasks is an override, not a task.
    c = str(tmp_path / "c")
    assert call("planet", "--scale", "smoke", "--tasks", "cup-catch", "train.episodes=0", "--out", c) == 2
    assert "train.episodes must be >= 1" in capsys.readouterr().err
    assert not any((tmp_path / name).exists() for name in "abc")
    picked = PLANET_TABLE.pick_runs(["walker-walk", "ball_in_cup-catch"])  # the table's order; the dm_control name
    assert [run.name for run in picked] == ["cup-catch", "walker-walk"]


def test_mujoco_runs_set_each_task():
    planned = reproduce.plan_trials(MUJOCO_TABLE, "cpu", MUJOCO_TABLE.runs, [0, 1, 2], "cpu", [])
    assert [trial.name for trial, _ in planned][::3] == [f"{task}_seed0" for task in MUJOCO_TASKS]
    for trial, cfg in planned:
        assert trial.config == str(ROOT / "configs" / "state_mujoco.yaml") and trial.obs == "state"
        assert cfg.env.id == trial.name.rsplit("_seed", 1)[0]
    assert [scale.seeds for scale in MUJOCO_TABLE.scales] == [(0, 1, 2), (0, 1, 2), (0,)]


def test_mujoco_smoke(tmp_path):
    out = tmp_path / "mujoco"
    assert call("mujoco", "--scale", "smoke", "--tasks", *MUJOCO_SMOKE_TASKS, "--out", str(out)) == 0
    rows = table_rows(out)
    assert list(rows) == MUJOCO_SMOKE_TASKS
    for task in MUJOCO_SMOKE_TASKS:
        logged = metrics(out / f"{task}_seed0")
        last = [r for r in logged if r.get("AverageReturn") is not None][-1]
        assert rows[task]["mean"] == last["AverageReturn"] and rows[task]["env_steps_read"] == [last["env_steps"]]
        assert 0 < last["env_steps"] < 1000  # a few hundred
        assert rows[task]["within_run_std"] == last["StdReturn"]
    assert rows["HalfCheetah-v5"]["published"] == {"MBBL PETS-CEM, 200k": {"mean": 2795.3, "std": 879.9}}
    assert rows["HalfCheetah-v5"]["reference"] == 2795.3


def test_dmc_state_runs_play_each_task_at_planets_repeat_and_four_episodes_an_iteration():
    planned = reproduce.plan_trials(DMC_STATE_TABLE, "cpu", DMC_STATE_TABLE.runs, [0], "cpu", [])
    assert [trial.name for trial, _ in planned] == ["cartpole-swingup_seed0", "cheetah-run_seed0", "walker-walk_seed0"]
    for trial, cfg in planned:
        task = trial.name.rsplit("_seed", 1)[0]
        assert trial.config == str(ROOT / "configs" / "state_dmc.yaml") and trial.obs == "state"
        assert (cfg.env.id, cfg.env.action_repeat) == (f"dmc:{task}", PLANET_REPEAT[task])
        assert cfg.train.mpc_steps * cfg.env.action_repeat == 4 * 1000  # four 1000-step episodes
        assert cfg.model.reward == "learned"


def test_dmc_state_smoke_writes_the_row_beside_tdmpc2_and_the_random_policy(tmp_path):
    out = tmp_path / "dmc"
    assert call("dmc_state", "--scale", "smoke", "--tasks", "dmc:walker-walk", "--out", str(out)) == 0
    rows = table_rows(out)
    assert list(rows) == ["walker-walk"]
    logged = metrics(out / "walker-walk_seed0")
    last = [r for r in logged if r.get("AverageReturn") is not None][-1]
    assert rows["walker-walk"]["mean"] == last["AverageReturn"]
    assert rows["walker-walk"]["random_policy_return"] == logged[0]["RandomReturn"]
    assert rows["walker-walk"]["published"] == {"TD-MPC2 (state), 100k": {"mean": 961.9, "std": 10.2}}
    assert "| random policy |" in (out / "table.md").read_text()
    # --table-only starts nothing: a row averages the seeds that have its figure, one without any shows none.
    assert call("dmc_state", "--scale", "smoke", "--table-only", "--tasks", "cheetah-run", "walker-walk",
                "--seeds", "0", "1", "--out", str(out)) == 0
    rows = table_rows(out)
    assert (rows["walker-walk"]["seeds"], rows["walker-walk"]["mean"]) == (1, last["AverageReturn"])
    assert (rows["cheetah-run"]["seeds"], rows["cheetah-run"]["mean"]) == (0, None)
    assert sorted(p.name for p in out.glob("*_seed*")) == ["walker-walk_seed0"]


def test_table_only_needs_a_folder_of_runs(tmp_path, capsys):
    assert call("dmc_state", "--scale", "smoke", "--table-only", "--out", str(tmp_path / "none")) == 2
    assert "holds no table's runs" in capsys.readouterr().err
    assert not (tmp_path / "none").exists()


def test_planners_labels_count_the_sequences_each_resolved_config_evaluates():
    """The planners table's rows say how many sequences a call each planner evaluates: the resolved configs'."""
    from worldmodel.agents.state_config import StateAgentConfig
    from worldmodel.planning import sequences_per_call
    from worldmodel.tables.planners import FULL, REFERENCE, REFERENCE_SEQUENCES, SEQUENCES, run_name

    for (planner, percent), sequences in SEQUENCES.items():
        run = next(r for r in PLANNERS_TABLE.runs if r.name == run_name(planner, percent))
        cfg = load_config(StateAgentConfig, ROOT / "configs" / "state_default.yaml", list(run.overrides_at("cpu")))
        assert cfg.planner.kind == planner
        assert sequences_per_call(cfg.planner) == sequences
        assert abs(sequences / FULL - percent / 100) < 0.02, (planner, percent, sequences)
    assert sequences_per_call(load_config(StateAgentConfig, ROOT / "configs" / "state_default.yaml").planner) == FULL
    reference = next(r for r in PLANNERS_TABLE.runs if r.name == REFERENCE)
    cfg = load_config(StateAgentConfig, ROOT / "configs" / "state_default.yaml", list(reference.overrides_at("cpu")))
    assert (cfg.planner.kind, cfg.planner.candidates, cfg.planner.iterations) == ("cem", 1000, 4)
    assert sequences_per_call(cfg.planner) == REFERENCE_SEQUENCES


def test_planners_findings_compare_the_quarter_budgets_with_cem_and_with_the_reference():
    """The two findings: a quarter-budget run at or above CEM 250 x 3; a run with at most 1000 sequences a call
    at or above CEM 1000 x 4; unknown (KeyError -> None in the table) while the row they need is missing."""
    from worldmodel.tables.planners import reaches_cem_with_a_quarter, reaches_reference_with_a_quarter

    means = {"cem_100": 900.0, "mppi_25": 910.0, "icem_25": 850.0, "rs_100": 2000.0, "cem_1000x4": 905.0}
    assert reaches_cem_with_a_quarter(means, 0.0)
    assert reaches_reference_with_a_quarter(means, 0.0)  # mppi_25 (186) and cem_100 (750) count; rs_100 too
    assert not reaches_reference_with_a_quarter({**means, "rs_100": 0.0, "mppi_25": 0.0, "cem_100": 0.0}, 0.0)
    assert not reaches_cem_with_a_quarter({**means, "mppi_25": 0.0}, 0.0)
    with pytest.raises(KeyError):
        reaches_reference_with_a_quarter({"cem_100": 900.0}, 0.0)


def test_planners_smoke_writes_the_rows_the_finding_and_the_budget_plot(tmp_path):
    out = tmp_path / "planners"
    tasks = ["cem_100", "icem_25"]
    assert call("planners", "--scale", "smoke", "--tasks", *tasks, "--out", str(out)) == 0
    rows = table_rows(out)
    assert list(rows) == tasks
    for task in tasks:
        finals = [r["AverageReturn"] for r in metrics(out / f"{task}_seed0") if r.get("AverageReturn") is not None]
        assert rows[task]["mean"] == finals[-1] and rows[task]["published"] == {}
    result = json.loads((out / "table.json").read_text())
    (claim, verdict), (reference_claim, unknown) = result["findings"].items()
    quarter = rows["icem_25"]["mean"]
    assert "CEM 250 x 3" in claim and "25%" in claim and verdict == (quarter >= rows["cem_100"]["mean"])
    assert "CEM 1000 x 4" in reference_claim and unknown is None  # its run was not picked
    assert result["figures"] == ["budgets.png"] and (out / "budgets.png").stat().st_size > 0
    assert "![final AverageReturn against planning budget" in (out / "table.md").read_text()


def test_planners_pixels_labels_count_the_sequences_each_resolved_config_evaluates():
    """The pixel planners table's budgets: each run's resolved planner evaluates the sequences its label says,
    a quarter, half or all of the CPU cartpole config's CEM 100 x 4."""
    from worldmodel.planning import sequences_per_call
    from worldmodel.tables.planners_pixels import FULL, SEQUENCES

    config = ROOT / "configs" / "pixels_cartpole_100k_cpu.yaml"
    assert sequences_per_call(load_config(PixelAgentConfig, config).planner) == FULL
    for (planner, percent), sequences in SEQUENCES.items():
        run = next(r for r in PLANNERS_PIXELS_TABLE.runs if r.name == f"{planner}_{percent}")
        cfg = load_config(PixelAgentConfig, config, list(run.overrides_at("cpu")))
        assert cfg.planner.kind == planner
        assert sequences_per_call(cfg.planner) == sequences
        assert abs(sequences / FULL - percent / 100) < 0.02, (planner, percent, sequences)


def test_planners_pixels_smoke_writes_the_rows_the_finding_and_the_budget_plot(tmp_path):
    """Pixel runs log no random policy's return: the finding, which needs none, is still checked."""
    out = tmp_path / "planners_pixels"
    tasks = ["cem_100", "mppi_25"]
    assert call("planners_pixels", "--scale", "smoke", "--tasks", *tasks, "--out", str(out)) == 0
    rows = table_rows(out)
    assert list(rows) == tasks
    for task in tasks:
        evaluations = [r["AverageReturn"] for r in metrics(out / f"{task}_seed0") if "AverageReturn" in r]
        assert rows[task]["mean"] == evaluations[-1] and rows[task]["random_policy_return"] is None
    result = json.loads((out / "table.json").read_text())
    ((claim, verdict),) = result["findings"].items()
    assert "CEM 100 x 4" in claim and verdict == (rows["mppi_25"]["mean"] >= rows["cem_100"]["mean"])
    assert result["figures"] == ["budgets.png"] and (out / "budgets.png").stat().st_size > 0
