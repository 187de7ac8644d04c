"""The typed config loader on the state agent's config: files, overrides and clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from worldmodel.agents.state_agent import StateAgentConfig
from worldmodel.config import load_config, save_config
from worldmodel.errors import ConfigError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
STATE_CONFIGS = ["state_default.yaml", "state_smoke.yaml", "state_halfcheetah_rs.yaml", "state_halfcheetah_cem.yaml"]
STATE_CONFIGS += ["state_mujoco.yaml", "state_dmc.yaml"]


@pytest.mark.parametrize("name", STATE_CONFIGS)
def test_shipped_configs_load(name):
    cfg = load_config(StateAgentConfig, CONFIGS / name)
    assert isinstance(cfg, StateAgentConfig)


def test_body_presets_resolve_their_reward_and_termination():
    mujoco = load_config(StateAgentConfig, CONFIGS / "state_mujoco.yaml", ["env.id=Hopper-v5"])
    assert (mujoco.model.reward, mujoco.model.termination) == ("known", "known")
    dmc = load_config(StateAgentConfig, CONFIGS / "state_dmc.yaml")
    assert (dmc.env.id, dmc.env.action_repeat, dmc.model.reward, dmc.model.termination) == (
        "dmc:cartpole-swingup", 8, "learned", "known"
    )


def test_default_yaml_equals_dataclass_defaults():
    assert load_config(StateAgentConfig, CONFIGS / "state_default.yaml") == StateAgentConfig()


def test_overrides_apply_in_order_and_parse_types(tmp_path):
    cfg = load_config(
        StateAgentConfig,
        CONFIGS / "state_smoke.yaml",
        ["planner.horizon=1", "planner.candidates=50", "model.delta_norm=false", "seed=7", "seed=8"],
    )
    assert cfg.planner.horizon == 1 and cfg.planner.candidates == 50
    assert cfg.model.delta_norm is False and cfg.seed == 8
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(StateAgentConfig, tmp_path / "config.yaml") == cfg  # the saved config round-trips


def test_unknown_key_names_it_and_suggests():
    with pytest.raises(ConfigError) as err:
        load_config(StateAgentConfig, None, ["planner.horizn=3"])
    message = str(err.value)
    assert "planner.horizn" in message and "'horizon'" in message and "\n" not in message


def test_unknown_section_key():
    with pytest.raises(ConfigError, match="unknown config key 'trian'"):
        load_config(StateAgentConfig, None, ["trian.iterations=3"])


@pytest.mark.parametrize(
    "override,expected",
    [
        ("planner.horizon=ten", "planner.horizon must be an integer"),
        ("model.delta_norm=maybe", "model.delta_norm must be true or false"),
        ("model.learning_rate=fast", "model.learning_rate must be a number"),
        ("planner.kind=pso", "planner.kind must be one of 'rs', 'cem', 'icem', 'mppi'"),
        ("logger=tensorboard", "logger must be one of"),
    ],
)
def test_type_errors(override, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(StateAgentConfig, None, [override])


def test_exponent_without_a_dot_is_a_number():
    """YAML 1.1 reads ``2e-4`` as a string; as an override or in a file it must still be the number."""
    assert load_config(StateAgentConfig, None, ["model.learning_rate=2e-4"]).model.learning_rate == 2e-4


@pytest.mark.parametrize(
    "overrides,expected",
    [
        (["planner.elites=2000"], "planner.elites must be between 1 and planner.candidates"),
        (["planner.horizon=0"], "planner.horizon must be >= 1"),
        (["env.num_envs=0"], "env.num_envs must be >= 1"),
        (["model.ensemble_size=0"], "model.ensemble_size must be >= 1"),
        (["model.termination_penalty=-1"], "model.termination_penalty must be >= 0"),
        (["train.iterations=0"], "train.iterations must be >= 1"),
        (["device=tpu"], "device must be auto, cpu or cuda"),
    ],
)
def test_values_out_of_range(overrides, expected):
    with pytest.raises(ConfigError, match=expected):
        load_config(StateAgentConfig, None, overrides)


def test_missing_file():
    with pytest.raises(ConfigError, match="config file not found: .*nope.yaml"):
        load_config(StateAgentConfig, CONFIGS / "nope.yaml")


def test_malformed_override():
    with pytest.raises(ConfigError, match="must look like key.sub=value"):
        load_config(StateAgentConfig, None, ["planner.horizon"])


def test_partial_section_override_keeps_the_agents_own_defaults():
    """planner.horizon=1 on the CPU default changes the horizon only, not candidates/elites back to
    PlannerConfig's class defaults."""

    default = StateAgentConfig()
    cfg = load_config(StateAgentConfig, None, ["planner.horizon=1"])
    assert cfg.planner.horizon == 1
    assert (cfg.planner.candidates, cfg.planner.elites) == (default.planner.candidates, default.planner.elites)
    assert cfg.model == default.model


CPU_PIXEL_CONFIGS = ("pixels_default", "pixels_smoke", "pixels_cartpole_100k_cpu")  # the small CPU model
PLANET_CONFIGS = sorted(p.name for p in CONFIGS.glob("pixels_*.yaml") if p.stem not in CPU_PIXEL_CONFIGS)


@pytest.mark.parametrize("name", PLANET_CONFIGS)
def test_planet_configs_weigh_the_loss_as_danijar_planet_and_plan_with_sampled_z(name):
    """Theirs: 0.5 x image SSE + 10 x 0.5 x reward SE + KL, clip 1000, eps 1e-4. Ours sums the squared errors
    without the 0.5, so the same loss up to a factor 2 is reward 10, KL 2, clip 2000, eps 2e-4."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig

    model = load_config(PixelAgentConfig, CONFIGS / name).model
    assert (model.reward_scale, model.kl_scale, model.free_nats) == (10.0, 2.0, 3.0)
    assert (model.grad_clip, model.adam_eps, model.learning_rate) == (2000.0, 2e-4, 1e-3)
    assert load_config(PixelAgentConfig, CONFIGS / name).planner.sample


def test_pixel_cpu_default_and_smoke_keep_the_plain_loss():
    from worldmodel.agents.pixel_agent import PixelAgentConfig

    assert PLANET_CONFIGS == ["pixels_cartpole_100k.yaml", "pixels_planet.yaml"]  # one PlaNet preset for all tasks
    assert load_config(PixelAgentConfig, CONFIGS / "pixels_default.yaml") == PixelAgentConfig()
    for name in ("pixels_default.yaml", "pixels_smoke.yaml"):
        cfg = load_config(PixelAgentConfig, CONFIGS / name)
        assert (cfg.model.reward_scale, cfg.model.kl_scale, cfg.model.grad_clip, cfg.planner.sample) == (1.0, 1.0, 1000.0, False)


@pytest.mark.parametrize(
    "env_id,repeat",
    [("dmc:cartpole-swingup", 8), ("dmc:reacher-easy", 4), ("dmc:cheetah-run", 4), ("dmc:finger-spin", 2),
     ("dmc:cup-catch", 4), ("dmc:walker-walk", 2), ("HalfCheetah-v5", 4)],
)
def test_the_planet_preset_is_planets_setting_for_any_task(env_id, repeat):
    """--env TASK --config configs/pixels_planet.yaml: the task with its own PlaNet action repeat, the rest as PlaNet."""
    from worldmodel.agents.pixel_agent import PixelAgentConfig
    from worldmodel.envs.pixels import resolved_action_repeat

    cfg = load_config(PixelAgentConfig, CONFIGS / "pixels_planet.yaml", [f"env.id={env_id}"])
    assert cfg.env.id == env_id and resolved_action_repeat(cfg.env) == repeat
    assert (cfg.model.belief_size, cfg.model.state_size, cfg.planner.candidates, cfg.train.train_steps) == (200, 30, 1000, 100)


def test_keys_that_moved_are_still_read_under_their_old_names(tmp_path):
    """A run folder or a command of an earlier version (model.train_steps, model.batch_size, model.plan_dtype)
    means train.train_steps, train.batch_size and planner.dtype; both names at once must agree."""
    old = tmp_path / "old.yaml"
    old.write_text("model:\n  hidden_size: 32\n  train_steps: 7\n  batch_size: 16\n  plan_dtype: bfloat16\n")
    cfg = load_config(StateAgentConfig, old)
    assert (cfg.train.train_steps, cfg.train.batch_size, cfg.planner.dtype, cfg.model.hidden_size) == (7, 16, "bfloat16", 32)
    cfg = load_config(StateAgentConfig, None, ["model.train_steps=9", "model.plan_dtype=bfloat16"])
    assert (cfg.train.train_steps, cfg.planner.dtype) == (9, "bfloat16")
    assert load_config(StateAgentConfig, old, ["train.train_steps=3"]).train.train_steps == 3  # the override wins
    clash = tmp_path / "clash.yaml"
    clash.write_text("model:\n  train_steps: 7\ntrain:\n  train_steps: 8\n")
    with pytest.raises(ConfigError, match="model.train_steps .* and train.train_steps are both given"):
        load_config(StateAgentConfig, clash)
