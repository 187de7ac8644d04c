"""scripts/report.py: runs grouped by config (seed ignored), the seeds' table and the plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from worldmodel.agents.pixel_config import PixelAgentConfig
from worldmodel.agents.state_agent import StateAgentConfig
from worldmodel.config import load_config, save_config

ROOT = Path(__file__).resolve().parents[1]


def load_report():
    spec = importlib.util.spec_from_file_location("report", ROOT / "scripts" / "report.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(folder: Path, kind: str, seed: int, returns: list[float]) -> Path:
    folder.mkdir(parents=True)
    save_config(load_config(StateAgentConfig, None, [f"planner.kind={kind}", f"seed={seed}"]), folder / "config.yaml")
    rows = [{"Iteration": i, "AverageReturn": r} for i, r in enumerate(returns)]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    return folder


def test_table_groups_seeds_and_plot_is_written(tmp_path, capsys):
    runs = [
        fake_run(tmp_path / "rs1", "rs", 1, [0.0, 10.0]),
        fake_run(tmp_path / "rs2", "rs", 2, [0.0, 20.0]),
        fake_run(tmp_path / "cem1", "cem", 1, [5.0, 30.0, 40.0]),
        fake_run(tmp_path / "cem2", "cem", 2, [5.0, 34.0, 44.0]),
    ]
    out = tmp_path / "report.md"
    assert load_report().main([str(r) for r in runs] + ["--out", str(out)]) == 0
    table = capsys.readouterr().out
    lines = [line for line in table.splitlines() if line.startswith("| planner.kind")]
    assert lines == [
        "| planner.kind=rs | 2 | 1, 2 | 1 | 15.00 | 5.00 |",
        "| planner.kind=cem | 2 | 1, 2 | 2 | 42.00 | 2.00 |",
    ]
    assert table in out.read_text()
    assert out.with_suffix(".png").read_bytes()[:4] == b"\x89PNG"


def test_not_a_run_folder_is_a_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="is not a run folder"):
        load_report().main([str(tmp_path)])


def test_json_holds_the_rows_and_the_curves(tmp_path):
    runs = [fake_run(tmp_path / f"cem{seed}", "cem", seed, [5.0, 30.0 + seed]) for seed in (1, 2)]
    out, json_out = tmp_path / "report.md", tmp_path / "report.json"
    assert load_report().main([str(r) for r in runs] + ["--out", str(out), "--json", str(json_out)]) == 0
    report = json.loads(json_out.read_text())
    (row,) = report["rows"]
    assert row["runs"] == 2 and row["seeds"] == [1, 2] and row["final_iteration"] == [1]
    assert row["final_returns"] == [31.0, 32.0]
    assert row["AverageReturn_mean"] == 31.5 and row["AverageReturn_std"] == 0.5
    assert report["curves"][row["config"]] == {"step": [0, 1], "mean": [5.0, 31.5], "std": [0.0, 0.5]}


def test_csv_holds_the_curves_by_env_steps(tmp_path):
    """Pixel runs log env_steps: the CSV carries them and the plot's x axis is env steps."""
    runs = []
    for seed in (1, 2):
        folder = fake_run(tmp_path / f"cem{seed}", "cem", seed, [])
        save_config(load_config(PixelAgentConfig, None, [f"seed={seed}"]), folder / "config.yaml")
        rows = [{"episode": e, "env_steps": 1000 * e, "AverageReturn": r} for e, r in ((10, 100.0), (20, 200.0 + seed))]
        (folder / "metrics.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
        runs.append(folder)
    out, csv_out = tmp_path / "report.md", tmp_path / "curves.csv"
    assert load_report().main([str(r) for r in runs] + ["--out", str(out), "--csv", str(csv_out)]) == 0
    header, first, second = csv_out.read_text().splitlines()
    assert header == "config,step,env_steps,runs,AverageReturn_mean,AverageReturn_std"
    assert first.split(",")[1:] == ["10", "10000", "2", "100.0000", "0.0000"]
    assert second.split(",")[1:] == ["20", "20000", "2", "201.5000", "0.5000"]
    assert out.with_suffix(".png").stat().st_size > 0


def test_outputs_in_new_folders_are_written(tmp_path):
    """--out, --json and --csv may name folders that do not exist yet: they are made."""
    runs = [fake_run(tmp_path / f"cem{seed}", "cem", seed, [5.0, 30.0 + seed]) for seed in (1, 2)]
    out, json_out, csv_out = tmp_path / "a" / "report.md", tmp_path / "b" / "r.json", tmp_path / "c" / "c.csv"
    args = [str(r) for r in runs] + ["--out", str(out), "--json", str(json_out), "--csv", str(csv_out)]
    assert load_report().main(args) == 0
    assert out.is_file() and out.with_suffix(".png").is_file() and json_out.is_file() and csv_out.is_file()
