"""The pixel agent: latent CEM on models with known rewards, the smoke run end to end from the
command line, resume after SIGKILL, loading a trained agent, and bad input leaving nothing behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import yaml

from worldmodel.agents.pixel_agent import PixelPolicy, load_agent, trim_metrics
from worldmodel.models.world_model import RSSMState, WorldModel, WorldModelConfig
from worldmodel.planning.cem import CEMPlanner, PlannerConfig

from resume_checks import HANG_GUARD_S, kill_mid_run, metric_lines, rows_of, without_timing  # tests/resume_checks.py

ROOT = Path(__file__).resolve().parents[1]
SMOKE = ROOT / "configs" / "pixels_smoke.yaml"
ENV = {**os.environ, "MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl"), "WANDB_MODE": "offline"}


def train_cmd(*args: str) -> list[str]:
    return [sys.executable, str(ROOT / "train" / "agent.py"), "--obs", "pixels", *args]


def run_cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(train_cmd(*args), cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=timeout)


def read_rows(logdir: Path) -> list[dict]:
    return [json.loads(line) for line in (logdir / "metrics.jsonl").read_text().splitlines() if line.strip()]


# ---- latent CEM -----------------------------------------------------------------------------


class KnownRewardModel:
    """A stand-in latent model: the state of env b is its target action, and the imagined return of
    a sequence is minus its squared distance to that target, so the best action is known."""

    action_size = 2
    device = torch.device("cpu")

    def __init__(self, targets: torch.Tensor) -> None:
        self.targets = targets  # (B, A)

    def initial_state(self, batch_size: int) -> RSSMState:
        return RSSMState(h=torch.zeros(batch_size, self.action_size), z=torch.zeros(batch_size, 0))

    def filter_step(self, state, action, obs, is_first, generator=None) -> RSSMState:
        # h (B, A): the frame "tells" the model where the reward is
        return RSSMState(h=self.targets, z=torch.zeros(len(self.targets), 0))

    def imagine_returns(self, state: RSSMState, actions: torch.Tensor, sample=False, generator=None) -> torch.Tensor:
        return -((actions - state.h[:, None, None, :]) ** 2).sum(dim=(2, 3))  # (B, N)


def test_latent_cem_chooses_each_envs_best_action_in_one_batched_call():
    targets = torch.tensor([[0.5, -0.25], [-0.75, 0.0], [0.1, 0.9]])  # (B, A), one per env
    box = torch.ones(2)
    cfg = PlannerConfig(kind="cem", horizon=4, candidates=300, elites=30, iterations=6, init="gaussian")
    planner = CEMPlanner(cfg, -box, box, generator=torch.Generator().manual_seed(0))
    calls = []
    original = planner.plan
    planner.plan = lambda objective, batch_size: calls.append(batch_size) or original(objective, batch_size)
    policy = PixelPolicy(KnownRewardModel(targets), planner)
    policy.reset()
    frames = np.zeros((3, 3, 64, 64), np.uint8)
    actions = policy.act(frames)
    assert actions.shape == (3, 2) and actions.dtype == np.float32
    np.testing.assert_allclose(actions, targets.numpy(), atol=0.05)
    assert calls == [3], "all envs must be planned in one call"


def test_exploration_noise_moves_executed_actions_and_stays_in_the_box():
    """explore=True executes the plan's first action plus exploration_noise x N(0, 1) noise drawn from the
    policy's generator, clipped to the box; explore=False executes the plan itself."""
    targets = torch.full((64, 2), 0.9)
    box = torch.ones(2)
    cfg = PlannerConfig(kind="cem", horizon=2, candidates=100, elites=10, iterations=4, init="gaussian")

    def policy() -> PixelPolicy:  # the same planner seed; the policy's own generator draws the exploration noise
        planner = CEMPlanner(cfg, -box, box, generator=torch.Generator().manual_seed(0))
        generator = torch.Generator().manual_seed(5)
        return PixelPolicy(KnownRewardModel(targets), planner, exploration_noise=0.3, generator=generator)

    frames = np.zeros((64, 3, 64, 64), np.uint8)
    planned = policy().act(frames, explore=False)  # (B, A)
    np.testing.assert_allclose(planned, targets.numpy(), atol=0.1)  # no noise: the plan, near the targets
    actions = policy().act(frames, explore=True)
    noise = torch.randn((64, 2), generator=torch.Generator().manual_seed(5)).numpy()  # (B, A)
    np.testing.assert_allclose(actions, np.clip(planned + 0.3 * noise, -1.0, 1.0), atol=1e-6)
    assert np.abs(actions).max() <= 1.0
    assert 0.1 < (actions - 0.9).std() < 0.3  # about the noise std, less where the box clips it


def known_reward_world_model(targets: torch.Tensor) -> WorldModel:
    """A tiny real world model whose own weights give a known reward: each step's belief is
    h[i] = tanh(a[i]) for the step's action a (A = 2), and the reward head returns
    -sum_i g(h[i] - tanh(targets[i])) with g(y) = elu(y) + elu(-y) = |y| + exp(-|y|) - 1, 0 at y = 0 and
    growing with |y|: every step's best action is ``targets``, whatever the filtered state."""
    torch.manual_seed(0)
    cfg = WorldModelConfig(belief_size=16, state_size=4, hidden_size=16, embedding_size=32, cnn_depth=4)
    model = WorldModel(cfg, action_size=2)
    S, D, A = cfg.state_size, cfg.belief_size, 2
    rssm, head = model.rssm, model.reward_head.net
    transition, gru = rssm.transition_input[0], rssm.gru  # Linear on [z, a], then ELU; GRU rows: reset, update, new
    first, second, last = head[0], head[2], head[4]  # Linear on [h, z], ELU, Linear, ELU, Linear -> 1
    with torch.no_grad():
        for p in (*transition.parameters(), *gru.parameters(), *first.parameters(), *second.parameters(),
                  *last.parameters()):
            p.zero_()
        gru.bias_ih[D : 2 * D] = -30.0  # update gate sigmoid(-30) ~ 1e-13: h' = the new candidate n
        for i in range(A):
            transition.weight[i, S + i], transition.bias[i] = 1.0, 2.0  # x[i] = elu(a[i] + 2) = a[i] + 2
            gru.weight_ih[2 * D + i, i], gru.bias_ih[2 * D + i] = 1.0, -2.0  # n[i] = tanh(a[i])
            goal = float(torch.tanh(targets[i]))
            first.weight[2 * i, i], first.bias[2 * i] = 1.0, -goal  # elu(h[i] - goal) ...
            first.weight[2 * i + 1, i], first.bias[2 * i + 1] = -1.0, goal  # ... and elu(goal - h[i]), both >= -1
            for j in (2 * i, 2 * i + 1):
                second.weight[j, j], second.bias[j] = 1.0, 1.0  # elu(u + 1) = u + 1 for u >= -1: passed on
                last.weight[0, j] = -1.0
        last.bias[0] = 2.0 * A  # -sum (u + 1) + 2A = -sum_i g(y_i)
    return model


def test_latent_cem_on_a_real_world_model_with_a_known_reward_head():
    """A tiny real world model whose transition, GRU and reward head weights make the reward a known
    function of the actions, best at a known non-centre action (0.6, -0.4): imagine_returns computes
    exactly that reward, and latent CEM planning through it must find that action at every step, for
    every env. A planner returning the box centre, CEM refitting to random elites, or a rollout that
    ignores the reward head's weights fails."""
    targets = torch.tensor([0.6, -0.4])  # (A,)
    model = known_reward_world_model(targets)
    frames = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8)
    state = model.filter_step(model.initial_state(2), torch.zeros(2, 2), frames, torch.ones(2, dtype=torch.bool))

    def known_returns(actions: torch.Tensor) -> torch.Tensor:  # (B, N, L, A) -> (B, N)
        y = torch.tanh(actions) - torch.tanh(targets)
        return -(y.abs() + torch.exp(-y.abs()) - 1).sum(dim=(2, 3))

    actions = torch.rand(2, 50, 3, 2) * 2 - 1  # (B, N, L, A)
    torch.testing.assert_close(model.imagine_returns(state, actions), known_returns(actions), atol=1e-5, rtol=1e-5)
    box = torch.ones(2)
    planner_cfg = PlannerConfig(kind="cem", horizon=3, candidates=200, elites=20, iterations=6, init="gaussian")
    planner = CEMPlanner(planner_cfg, -box, box, generator=torch.Generator().manual_seed(1))
    plan = planner.plan(lambda actions: model.imagine_returns(state, actions), batch_size=2)  # (B, L, A)
    torch.testing.assert_close(plan, targets.expand(2, 3, 2), atol=0.05, rtol=0)


def tiny_sampling_model() -> WorldModel:
    """A tiny untrained world model (planned with sampled z: ``seeded_policy``), 2 action dims."""
    torch.manual_seed(0)
    cfg = WorldModelConfig(belief_size=16, state_size=4, hidden_size=16, embedding_size=32, cnn_depth=4)
    return WorldModel(cfg, action_size=2).eval()


def seeded_policy(model: WorldModel, seed: int, compile: bool = False) -> PixelPolicy:
    """A small CEM policy on sampled z whose planner and acting share one generator seeded with ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    box = torch.ones(model.action_size)
    planner_cfg = PlannerConfig(kind="cem", horizon=3, candidates=32, elites=4, iterations=2, init="gaussian",
                                sample=True, compile=compile)
    return PixelPolicy(model, CEMPlanner(planner_cfg, -box, box, generator=generator), generator=generator)


def platform_cannot_compile() -> str | None:
    """Why torch.compile fails on this machine even for a trivial function (e.g. no C++ compiler), else None."""
    try:
        torch.compile(lambda x: x * 2 + 1, dynamic=False)(torch.ones(3))
    except Exception as err:  # noqa: BLE001 - whatever stops the compiler here
        return repr(err)
    return None


@pytest.mark.slow
def test_compiled_planner_call_returns_the_eager_plan_for_the_same_generator():
    """``planner.compile``: torch.compile of the whole planner call on the CPU (a recorded CUDA graph on a GPU)
    compiles without falling back to eager code (its warning would say so), and plans the same as eager code
    from the same generator seed, sampled z included. Skipped only where torch cannot compile at all."""
    model = tiny_sampling_model()

    frames = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8).numpy()
    eager, compiled = seeded_policy(model, seed=3), seeded_policy(model, seed=3, compile=True)
    expected, got = [], []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(2):  # two steps: the second plans from a filtered (not initial) state
            expected.append(eager.act(frames))
            got.append(compiled.act(frames))
    # Checked first: a compile failing part-way may have drawn from the generator, so the fallback's plans differ.
    fallbacks = [str(w.message) for w in caught if str(w.message).startswith("planner.compile")]
    if fallbacks and (reason := platform_cannot_compile()):
        pytest.skip(f"torch cannot compile on this platform: {reason}")
    assert not fallbacks, fallbacks
    np.testing.assert_allclose(np.stack(got), np.stack(expected), rtol=1e-4, atol=1e-4)


def test_acting_draws_every_random_number_from_the_policys_generator():
    """Dequantisation noise, the posterior sample, sampled planning and exploration noise: the same
    generator seed gives the same actions whatever torch's global RNG has done in between."""
    model = tiny_sampling_model()
    frames = torch.randint(0, 256, (2, 3, 64, 64), dtype=torch.uint8).numpy()

    def actions(global_seed: int) -> np.ndarray:
        policy = seeded_policy(model, seed=3)
        torch.manual_seed(global_seed)
        return np.stack([policy.act(frames, explore=True) for _ in range(3)])

    np.testing.assert_array_equal(actions(1), actions(2))


def test_plan_compile_with_a_warm_start_is_a_config_error():
    from worldmodel.agents.pixel_agent import PixelAgentConfig
    from worldmodel.config import load_config
    from worldmodel.errors import ConfigError

    with pytest.raises(ConfigError, match="warm_start"):
        load_config(PixelAgentConfig, SMOKE, ["planner.compile=true", "planner.warm_start=true"])
    with pytest.raises(ConfigError, match="warm_start"):  # its older name, as an older run folder has it
        load_config(PixelAgentConfig, SMOKE, ["model.plan_compile=true", "planner.warm_start=true"])


# ---- the command line -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tmp_path_factory) -> Path:
    logdir = tmp_path_factory.mktemp("pixels") / "smoke"
    started = time.perf_counter()
    result = run_cli("--config", str(SMOKE), "--logdir", str(logdir), "logger=none")
    assert result.returncode == 0, result.stderr[-3000:]
    print(f"pixel smoke run: {time.perf_counter() - started:.1f}s")
    return logdir


@pytest.mark.slow
def test_smoke_run_writes_config_metrics_media_and_learns(smoke_run):
    config = yaml.safe_load((smoke_run / "config.yaml").read_text())
    assert config["env"]["id"] == "dmc:cartpole-swingup" and config["logger"] == "none"
    rows = read_rows(smoke_run)
    assert [row["episode"] for row in rows] == [2, 3]
    for row in rows:
        for key in ("env_steps", "episode", "recon_loss", "reward_loss", "kl_loss", "wall_time", "fps"):
            assert key in row and row[key] is not None, (key, row)
        assert "heldout_recon_loss" in row
    assert any("AverageReturn" in row for row in rows)
    assert rows[1]["env_steps"] > rows[0]["env_steps"] > 0
    assert rows[1]["recon_loss"] < 0.8 * rows[0]["recon_loss"]
    assert rows[1]["heldout_recon_loss"] < rows[0]["heldout_recon_loss"]
    media = {path.name.rsplit("_", 1)[0]: path for path in (smoke_run / "media").iterdir()}
    assert {"recon", "openl", "eval_episode"} <= set(media)
    grid = iio.imread(media["recon"])
    assert grid.dtype == np.uint8 and grid.shape[0] == 2 * grid.shape[1] // 8  # truth over reconstruction, 8 frames
    openl = iio.imread(media["openl"])  # (T, 3H, B W, C): truth / model / error rows
    assert openl.shape[0] == 10 and openl.shape[1] == 3 * 64 * 2
    assert (smoke_run / "checkpoint.pt").is_file()


@pytest.mark.slow
def test_load_agent_acts_and_reconstructs(smoke_run):
    """The loaded world model holds the checkpoint's tensors, and the policy acts and reconstructs as the
    run's own model does (built from config.yaml and the checkpoint's weights, its planner and generator
    seeded with the run's seed) on the same frames of the run's env."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig
    from worldmodel.checkpoint import load_checkpoint
    from worldmodel.config import load_config

    policy = load_agent(smoke_run, device="cpu")
    saved = load_checkpoint(smoke_run / "checkpoint.pt", kind="pixels")["run"]["world_model"]["model"]
    loaded = policy.world_model.state_dict()
    assert set(loaded) == set(saved)
    for name, tensor in saved.items():
        torch.testing.assert_close(loaded[name], tensor, rtol=0, atol=0, msg=name)

    cfg = load_config(PixelAgentConfig, smoke_run / "config.yaml")
    model = WorldModel(cfg.model, action_size=1, image_shape=(3, cfg.env.image_size, cfg.env.image_size))
    model.load_state_dict(saved)
    generator = torch.Generator().manual_seed(cfg.seed)
    planner = CEMPlanner(cfg.planner, -torch.ones(1), torch.ones(1), generator=generator)
    reference = PixelPolicy(model, planner, generator=generator)
    envs = policy.make_envs(num_envs=2, seed=3)
    try:
        obs = envs.reset()
        assert obs.shape == (2, 3, cfg.env.image_size, cfg.env.image_size) and obs.dtype == np.uint8
        policy.reset()
        reference.reset()
        for _ in range(2):  # the second step filters the first action and plans from a moved-on generator
            actions = policy.act(obs)
            assert actions.shape == (2, 1) and np.abs(actions).max() <= 1.0
            np.testing.assert_array_equal(actions, reference.act(obs))
            seen = policy.reconstruct()
            assert seen.shape == obs.shape and seen.dtype == np.uint8
            np.testing.assert_array_equal(seen, reference.reconstruct())
            obs, reward, done = envs.step(actions)
    finally:
        envs.close()


PIXEL_WARM_UP = ("seed episode", "held-out episode")  # the lines of the random-action episodes
PIXEL_PLAYED = frozenset({"train_return", "AverageReturn"})  # a resumed run's envs are seeded anew


@pytest.mark.slow
def test_sigkill_after_a_checkpoint_then_resume_loses_nothing(tmp_path):
    """The smoke config (held-out episode, evaluation, media; shorter episodes) killed mid-run: a
    1000-episode run SIGKILLed (frozen first, so no race) once a row past its checkpoint at episode 2+
    is logged, then resumed to two episodes past that checkpoint. The resume keeps the rows before the
    checkpoint byte for byte, plays no seed or held-out episode again, logs the lost row again with the
    same training and held-out metrics (model, replay, held-out data and random streams restored), and
    logs every episode's row once."""
    logdir = tmp_path / "killed"
    shorter = ["env.max_episode_steps=12", "train.train_steps=3", "train.checkpoint_every=2"]  # fewer frames, steps
    args = train_cmd("--config", str(SMOKE), "--logdir", str(logdir), "logger=none", *shorter)
    killed = kill_mid_run([*args, "train.episodes=1000"], logdir, "episode", lambda row: row["episode"], 2, ROOT, ENV)
    at = killed.checkpoint
    assert 2 <= at < 1000, at  # killed mid-run
    kept = [line for line in killed.lines if json.loads(line)["episode"] <= at]
    lost = [row for row in rows_of(killed.lines) if row["episode"] > at]
    assert kept and lost

    length = max(at + 2, *(row["episode"] for row in lost))
    result = subprocess.run(
        [sys.executable, str(ROOT / "train" / "agent.py"), "--resume", str(logdir), f"train.episodes={length}"],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=HANG_GUARD_S,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    assert not [line for line in result.stdout.splitlines() if line.startswith(PIXEL_WARM_UP)], result.stdout
    lines = metric_lines(logdir)
    assert lines[: len(kept)] == kept, "rows logged before the checkpoint were rewritten (a redo?)"
    rows = rows_of(lines)
    assert [row["episode"] for row in rows] == [*range(2, length + 1)], "rows missing or logged twice"
    assert "heldout_recon_loss" in lost[0]
    assert without_timing(rows[len(kept) : len(kept) + 1], PIXEL_PLAYED) == without_timing(lost[:1], PIXEL_PLAYED)
    assert yaml.safe_load((logdir / "config.yaml").read_text())["train"]["episodes"] == length


@pytest.mark.slow
def test_two_envs_in_workers_train_and_resume(tmp_path):
    """env.num_envs=2: seed, held-out, collected and evaluation episodes come two at a time from the
    worker processes; the run stops, and a resume with more episodes continues it: the first run's
    row kept byte for byte, no seed or held-out episode played again, the counters carried on."""
    logdir = tmp_path / "two_envs"
    tiny = ["env.num_envs=2", "env.max_episode_steps=8", "train.train_steps=2", "train.chunk_length=6", "logger=none"]
    result = run_cli("--config", str(SMOKE), "--logdir", str(logdir), *tiny, "train.episodes=3")
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(action repeat 8)" in result.stdout
    first = metric_lines(logdir)
    assert [row["episode"] for row in rows_of(first)] == [4]  # 2 seed episodes, then 2 collected
    result = run_cli("--resume", str(logdir), "train.episodes=6")
    assert result.returncode == 0, result.stderr[-3000:]
    output = (result.stdout + result.stderr).splitlines()
    assert "(action repeat 8)" in result.stdout and not [line for line in output if line.startswith(PIXEL_WARM_UP)]
    lines = metric_lines(logdir)
    assert lines[:1] == first, "the first run's row was rewritten (a redo?)"
    rows = rows_of(lines)
    assert [row["episode"] for row in rows] == [4, 6]
    batch_steps = 2 * 8 * 8  # 2 envs x 8 agent steps x action repeat 8
    assert (rows[0]["env_steps"], rows[1]["env_steps"]) == (2 * batch_steps, 3 * batch_steps)  # seed batch counts
    assert (rows[0]["train_steps"], rows[1]["train_steps"]) == (2, 4)
    assert "AverageReturn" in rows[1]


@pytest.mark.slow
def test_evaluation_plays_its_episodes_in_its_own_batch_of_envs():
    """train.eval_envs: evaluation plans for its own batch of worker envs in one call per step (the
    collection env stays single), and closing the run ends those workers."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig, evaluate, prepare
    from worldmodel.config import load_config

    overrides = ["train.eval_envs=3", "train.eval_episodes=3", "env.max_episode_steps=6", "logger=none"]
    run = prepare(load_config(PixelAgentConfig, SMOKE, overrides), None)
    try:
        batch_sizes = []
        act = run.policy.act
        run.policy.act = lambda obs, explore=False: (batch_sizes.append(len(obs)), act(obs, explore))[1]
        score, frames = evaluate(run)
        assert np.isfinite(score) and frames.shape == (7, 3, 64, 64) and frames.dtype == np.uint8
        assert batch_sizes == [3] * 6  # 3 episodes, 6 steps each, one planner call per step
        assert run.envs.num_envs == 1 and run.eval_envs.num_envs == 3
        workers = run.eval_envs._procs
    finally:
        run.close()
    assert all(proc.poll() is not None for proc in workers)


def test_trim_metrics_drops_rows_past_the_checkpoint(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps({"episode": e}) + "\n" for e in (2, 3, 4)) + '{"episode": 5, "rec')
    trim_metrics(path, 3)
    assert [json.loads(line)["episode"] for line in path.read_text().splitlines()] == [2, 3]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--config", str(SMOKE), "--env", "dmc:nodomain-run"], ["unknown dm_control domain", "cartpole"]),
        (["--config", str(SMOKE), "--env", "dmc:cartpole-fly"], ["unknown task", "swingup"]),
        (["--config", str(SMOKE), "env.image_size=32"], ["64", "(C, 64, 64)"]),
        (["--config", str(SMOKE), "replay.capacity_mb=0.01"], ["replay.capacity_mb", "chunk"]),
        (["--config", str(SMOKE), "train.chunk_length=1"], ["train.chunk_length"]),
    ],
)
def test_bad_input_is_one_clear_line_and_leaves_no_logdir(tmp_path, args, words):
    logdir = tmp_path / "run"
    result = run_cli("--logdir", str(logdir), *args, timeout=120)
    assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for word in words:
        assert word in lines[0], (word, lines[0])
    assert not logdir.exists()


def test_resuming_a_folder_without_a_run_is_a_clear_error(tmp_path):
    result = run_cli("--resume", str(tmp_path / "nothing"), timeout=120)
    assert result.returncode == 2 and result.stderr.strip().startswith("error: cannot resume"), result.stderr
    assert not (tmp_path / "nothing").exists()
