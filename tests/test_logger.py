"""The logger: metrics.jsonl rows, media in logdir/media/ AND inside a real offline wandb run,
no wandb folder with logger=none, the mode switch, resuming the same run id, readable mp4s."""

from __future__ import annotations

import json
import struct
import time
import warnings

import imageio.v3 as iio
import numpy as np
import pytest

from worldmodel.errors import UserError
from worldmodel.logging.logger import Logger, WandbConfig, read_metrics, trim_metrics, wandb_mode, write_mp4


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No account, no network: wandb's settings and cache go to the test's folder."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_DIR", str(tmp_path / "wandb_home"))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "wandb_config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "wandb_cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "wandb_data"))


def frames(T: int = 7, H: int = 32, W: int = 48) -> np.ndarray:
    """A moving gradient, (T, H, W, 3) uint8."""
    t, y, x = np.meshgrid(np.arange(T), np.arange(H), np.arange(W), indexing="ij")
    return np.stack([(x * 5 + t * 20) % 256, (y * 7) % 256, np.full_like(x, 128)], axis=-1).astype(np.uint8)


BLOCK = 32768  # the .wandb file's block size


def offline_run_dirs(logdir):
    return sorted((logdir / "wandb").glob("offline-run-*"))


def read_wandb_file(path) -> list:
    """The ``Record``s (wandb's protobuf) in an offline run's .wandb file, a LevelDB-style log: a 7-byte
    file header, then chunks (4-byte checksum, 2-byte length, 1-byte type: 1 whole, 2 first, 3 middle,
    4 last) in 32 KiB blocks whose tails under 7 bytes are padding. A chunk not written out yet ends it."""
    from wandb.proto import wandb_internal_pb2

    data, records, pos, parts = path.read_bytes(), [], 7, b""
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        if pos + 7 + length > len(data):
            break
        parts = (b"" if kind in (1, 2) else parts) + data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(parts)
            records.append(record)
    return records


def wandb_records(path, timeout: float = 60.0) -> list:
    """The offline run file's records once it is complete. wandb's service process writes the file
    and may finish a moment after ``finish()`` returns (the process's exit waits for it), so wait
    until the file ends with the run's ``exit`` record, the last one wandb writes."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_file(path)
        if records and records[-1].WhichOneof("record_type") == "exit":
            return records
        assert time.monotonic() < deadline, f"{path} has no exit record after {timeout} s"
        time.sleep(0.05)


def history(records) -> list[dict]:
    """The rows wandb keeps, in the file's order: {key: value}, a media item's fields as "name.field",
    wandb's own keys ("_step", "_runtime" ...) left out."""
    rows = []
    for record in records:
        if record.WhichOneof("record_type") == "history":
            items = {".".join(item.nested_key) or item.key: json.loads(item.value_json) for item in record.history.item}
            rows.append({key: value for key, value in items.items() if not key.startswith("_")})
    return rows


def test_offline_wandb_run_gets_rows_images_and_videos(offline, tmp_path, capsys):
    logdir = tmp_path / "run"
    cfg = WandbConfig(project="worldmodel-tests", name="logger-test", tags=["test"])
    logger = Logger(logdir, backend="wandb", wandb_cfg=cfg, config={"seed": 3, "model": {"size": 8}})
    run = logger.wandb_run
    assert run is not None and run.settings.mode == "offline"
    assert run.project == "worldmodel-tests" and run.name == "logger-test", (run.project, run.name)
    assert tuple(run.tags) == ("test",), run.tags
    assert run.config["seed"] == 3 and dict(run.config["model"]) == {"size": 8}, dict(run.config)
    logger.log({"Iteration": 0, "AverageReturn": np.float32(1.5), "flag": True, "nan": float("nan")}, step=0)
    logger.image("recon", frames()[0], step=0)
    logger.video("openl", frames(T=7), step=0, fps=10)
    logger.log({"Iteration": 1, "AverageReturn": 2.5}, step=1)
    logger.close()

    rows = read_metrics(logdir / "metrics.jsonl")
    assert rows == [
        {"Iteration": 0, "AverageReturn": 1.5, "flag": True, "nan": None},
        {"Iteration": 1, "AverageReturn": 2.5},
    ]
    assert (logdir / "media" / "recon_00000000.png").is_file()
    assert (logdir / "media" / "openl_00000000.mp4").is_file()
    (run_dir,) = offline_run_dirs(logdir)
    assert run_dir.name.endswith(run.id) and (run_dir / f"run-{run.id}.wandb").is_file()
    rows = history(wandb_records(run_dir / f"run-{run.id}.wandb"))  # numbers only: no bool, no None
    assert [{k: v for k, v in row.items() if "." not in k} for row in rows] == [
        {"Iteration": 0, "AverageReturn": 1.5},
        {"Iteration": 1, "AverageReturn": 2.5},
    ]
    assert rows[0]["recon._type"] == "image-file" and rows[0]["openl._type"] == "video-file", rows[0]
    assert len(list(run_dir.glob("files/media/images/recon_*.png"))) == 1
    (video,) = run_dir.glob("files/media/videos/openl_*.mp4")
    assert iio.imread(video).shape == (7, 32, 48, 3)
    assert (logdir / "wandb_run_id").read_text() == run.id
    err = capsys.readouterr().err
    assert "wandb sync" in err, err
    assert "Traceback" not in err, err


def test_resume_continues_the_same_wandb_run(offline, tmp_path):
    logdir = tmp_path / "run"
    with Logger(logdir, backend="wandb") as logger:
        first_id = logger.wandb_run.id
        logger.log({"Iteration": 0}, step=0)
    with Logger(logdir, backend="wandb", resume=True) as logger:
        assert logger.wandb_run.id == first_id
        logger.log({"Iteration": 1}, step=1)
    runs = offline_run_dirs(logdir)
    assert len(runs) == 2 and all((d / f"run-{first_id}.wandb").is_file() for d in runs)  # one folder per session
    with Logger(tmp_path / "other", backend="wandb") as logger:  # a new run gets a new id
        assert logger.wandb_run.id != first_id


def test_backend_none_writes_no_wandb_folder(offline, tmp_path):
    logdir = tmp_path / "run"
    with Logger(logdir, backend="none") as logger:
        assert logger.wandb_run is None and logger.wandb_dir is None
        logger.log({"episode": 1, "recon_loss": 0.5}, step=10)
        image_path = logger.image("recon", frames()[0], step=10)
        video_path = logger.video("eval_episode", frames(), step=10)
    assert not (logdir / "wandb").exists() and not (logdir / "wandb_run_id").exists()
    assert image_path.is_file() and video_path.is_file()
    assert read_metrics(logdir / "metrics.jsonl") == [{"episode": 1, "recon_loss": 0.5}]


def test_mode_disabled_means_no_wandb(monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "disabled")
    with Logger(tmp_path / "run", backend="wandb") as logger:
        assert logger.wandb_run is None
    assert not (tmp_path / "run" / "wandb").exists()


def test_wandb_mode_env_wins_over_config(monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    assert wandb_mode(WandbConfig()) == "offline"
    assert wandb_mode(WandbConfig(mode="online")) == "online"
    monkeypatch.setenv("WANDB_MODE", "online")
    assert wandb_mode(WandbConfig(mode="offline")) == "online"
    monkeypatch.setenv("WANDB_MODE", "dryrun")
    assert wandb_mode(WandbConfig(mode="online")) == "offline"
    monkeypatch.setenv("WANDB_MODE", "sometimes")
    with pytest.raises(UserError, match="WANDB_MODE"):
        wandb_mode(WandbConfig())


def test_online_without_an_account_is_one_clear_error(offline, monkeypatch, tmp_path):
    monkeypatch.setenv("WANDB_MODE", "online")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))  # no ~/.netrc with a key
    monkeypatch.setenv("NETRC", str(tmp_path / "home" / ".netrc"))
    monkeypatch.setattr("sys.stdin", open("/dev/null"))  # not a terminal: wandb must not prompt
    with pytest.raises(UserError, match="wandb login") as info:
        Logger(tmp_path / "run", backend="wandb")
    assert "\n" not in str(info.value)


def test_a_video_that_cannot_be_written_warns_once_and_the_run_goes_on(tmp_path, monkeypatch):
    """Where imageio has no mp4 writer (no imageio-ffmpeg, as on a bare GPU machine) a run must not die
    at its first video, hours in."""
    from worldmodel.logging import logger as logger_module

    def no_mp4_writer(path, frames, fps):
        raise TypeError("TiffWriter.write() got an unexpected keyword argument 'fps'")

    monkeypatch.setattr(logger_module, "write_mp4", no_mp4_writer)
    with Logger(tmp_path / "run", backend="none") as logger:
        with pytest.warns(UserWarning, match="cannot write videos"):
            assert logger.video("openl", frames(), step=1) is None
        with warnings.catch_warnings(record=True) as later:
            warnings.simplefilter("always")
            assert logger.video("openl", frames(), step=2) is None
        assert not later  # one warning per run
        logger.log({"AverageReturn": 1.0}, step=2)
    assert read_metrics(tmp_path / "run" / "metrics.jsonl")[-1]["AverageReturn"] == 1.0


def test_figure_and_image_file_land_in_media(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    logger = Logger(tmp_path / "run", backend="none")
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot([3, 2, 1])
    figure_path = logger.figure("model/loss_curve", fig, step=2)
    plt.close(fig)
    copy_path = logger.image("model/loss_curve_copy", figure_path, step=2)
    logger.close()
    assert figure_path.name == "model_loss_curve_00000002.png"
    assert iio.imread(figure_path).shape[:2] == (200, 300)
    assert copy_path.read_bytes() == figure_path.read_bytes()


@pytest.mark.parametrize("shape", [(5, 32, 48, 3), (4, 31, 17, 3), (3, 16, 16)])
def test_write_mp4_reads_back_with_the_right_frame_count(tmp_path, shape):
    T, H, W = shape[:3]
    video = frames(T, H, W) if len(shape) == 4 else frames(T, H, W)[..., 0]  # grey too
    path = write_mp4(tmp_path / "v.mp4", video, fps=12)
    back = iio.imread(path)
    assert back.shape == (T, H + H % 2, W + W % 2, 3)  # odd sizes padded by one pixel
    assert iio.immeta(path)["fps"] == pytest.approx(12)
    if len(shape) == 4:
        # lossy, but close: mean absolute error of a few grey levels
        assert np.abs(back[:, :H, :W].astype(int) - video.astype(int)).mean() < 12


def test_trim_metrics_drops_redone_and_partial_rows(tmp_path):
    path = tmp_path / "metrics.jsonl"
    rows = [{"Iteration": i, "AverageReturn": float(i)} for i in range(4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"Iteration": 4, "Avera')  # killed mid-write
    assert len(read_metrics(path)) == 4
    dropped = trim_metrics(path, lambda row: row["Iteration"] < 2)
    assert dropped == 3 and read_metrics(path) == rows[:2]
    assert path.read_text().endswith("\n")


@pytest.mark.slow
def test_pixel_smoke_run_leaves_media_in_logdir_and_offline_wandb_run(tmp_path):
    """Issue 4's done-when: an image and a video both in logdir/media/ and in the offline wandb run."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[1]
    logdir = tmp_path / "run"
    env = dict(os.environ, MUJOCO_GL=os.environ.get("MUJOCO_GL", "egl"), WANDB_MODE="offline")
    env.update(WANDB_CONFIG_DIR=str(tmp_path / "wandb_config"), WANDB_CACHE_DIR=str(tmp_path / "wandb_cache"))
    overrides = ["logger=wandb", "wandb.tags=[smoke]", "env.max_episode_steps=8", "train.episodes=2"]
    overrides += ["train.train_steps=1", "train.batch_size=2", "train.chunk_length=4", "train.heldout_episodes=0"]
    overrides += ["planner.candidates=8", "planner.elites=2", "planner.iterations=1", "planner.horizon=3"]
    args = [sys.executable, str(repo / "train" / "agent.py"), "--obs", "pixels"]
    args += ["--config", "configs/pixels_smoke.yaml", "--logdir", str(logdir), *overrides]
    result = subprocess.run(args, cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert list(logdir.glob("media/*.png")) and list(logdir.glob("media/*.mp4"))
    (run_dir,) = offline_run_dirs(logdir)
    assert list(run_dir.glob("files/media/images/*.png")) and list(run_dir.glob("files/media/videos/*.mp4"))
    assert (run_dir / f"run-{(logdir / 'wandb_run_id').read_text()}.wandb").is_file()
    assert "wandb sync" in result.stderr
