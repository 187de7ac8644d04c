"""Time the CEM planner on the homework workload against the classroom loop, and the latent workload.

    python scripts/bench_planner.py --device cpu [--repeats 5] [--envs 1] [--workload state|latent|all]

Workloads:
  state   the homework (issue 2): ensemble of 5 MLPs 2x250 ReLU, HalfCheetah sizes (state 18, model
          input 17 + 6 actions, output 18), CEM K=1000 L=15, 4 iterations, 100 elites, through the
          library's DynamicsEnsemble.imagine_returns. Interleaved with it, round by round, a naive
          reference doing the same work the classroom way (seed 004): python loops over
          environments, members and time steps, per-member nn.Linear modules, reward every step.
  latent  PlaNet (issue 3): CEM K=1000 L=12, 10 iterations, 100 elites through WorldModel.imagine_returns
          (belief 200, state 30, hidden 200, action size 1 as in cartpole).

Every round also times large square matmuls (the fp32 peak, same thread count) and the ensemble's
inference kernels at the workload's batch, so all figures see the same load. Reported figures are
medians over ``--repeats`` rounds after one warm-up round; ``best_*`` keys hold the fastest round,
and ``*_rounds`` every round, since the machine may be shared.

Output: a human-readable summary, then ONE JSON object on the last line. The first workload run
(``state`` for ``all``) is flattened at the top level (``ms_per_action``, ``naive_ms_per_action``,
``gflops``, ``peak_gflops``, ...) with ``workload`` naming it; any further workload is nested under
its name (e.g. ``"latent": {"ms_per_action": ...}``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from torch import Tensor, nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a fresh clone without installing

from worldmodel.devices import resolve_device  # noqa: E402
from worldmodel.cpu import tune_cpu  # noqa: E402
from worldmodel.cuda_graphs import on_side_stream, record_graph  # noqa: E402
from worldmodel.envs.rewards import RewardFn, half_cheetah_reward  # noqa: E402
from worldmodel.errors import UserError  # noqa: E402
from worldmodel.models.dynamics import DynamicsEnsemble, EnsembleConfig  # noqa: E402
from worldmodel.models.ensemble import EnsembleMLP  # noqa: E402
from worldmodel.planning import PlannerConfig, make_planner  # noqa: E402

STATE_SIZE, ACTION_SIZE = 18, 6  # HalfCheetah with x: qpos 9 + qvel 9; the model sees dims 1..17 (no rootx)
ENSEMBLE_SIZE, HIDDEN_SIZE, NUM_LAYERS = 5, 250, 2
STATE_PLANNER = PlannerConfig(kind="cem", horizon=15, candidates=1000, iterations=4, elites=100)
LATENT_PLANNER = PlannerConfig(kind="cem", horizon=12, candidates=1000, iterations=10, elites=100, init="gaussian")


# ----------------------------------------------------------------------------------- timing helpers


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Seconds for one call; the only syncs are around the timed region, none inside ``fn``."""
    synchronize(device)
    start = time.perf_counter()
    fn()
    synchronize(device)
    return time.perf_counter() - start


@dataclass
class Timings:
    """Seconds per call of each named contender, one entry per round."""

    rounds: dict[str, list[float]] = field(default_factory=dict)

    def add(self, name: str, seconds: float) -> None:
        self.rounds.setdefault(name, []).append(seconds)

    def median(self, name: str) -> float:
        return statistics.median(self.rounds[name])

    def best(self, name: str) -> float:
        """The fastest round: what the machine can do when the engineers sharing it are quiet."""
        return min(self.rounds[name])


def run_rounds(contenders: dict[str, Callable[[], object]], repeats: int, device: torch.device) -> Timings:
    """One warm-up call each, then ``repeats`` rounds calling every contender once, in turn."""
    for fn in contenders.values():
        fn()
    timings = Timings()
    for _ in range(repeats):
        for name, fn in contenders.items():
            timings.add(name, timed(fn, device))
    return timings


def cuda_graphed(fn: Callable[[], object]) -> Callable[[], object] | None:
    """``fn`` captured as one CUDA graph, replayed with a single launch; None where capture fails.

    At B=1 the eager planner on a GPU is bound by ~1000 small kernel launches per plan, not by
    flops; the graph removes that overhead. Each replay draws fresh noise (PyTorch's CUDA RNG is
    graph-safe) and rewrites the same output tensors.
    """
    for _ in range(3):  # warm up outside the graph: cuBLAS handles, the caching allocator
        on_side_stream(fn)
    try:
        graph, _ = record_graph(fn)
    except RuntimeError as err:
        print(f"note: the planner cannot be captured as a CUDA graph ({str(err).splitlines()[0]}); eager only")
        return None
    return graph.replay


def peak_matmul(device: torch.device) -> tuple[Callable[[], object], float]:
    """A call doing square fp32 matmuls big enough to reach the BLAS peak, and its flop count."""
    size, calls = (2048, 4) if device.type == "cpu" else (8192, 20)
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    out = torch.empty(size, size, device=device)

    def run() -> None:
        for _ in range(calls):
            torch.mm(a, b, out=out)

    return run, 2.0 * size**3 * calls


# ------------------------------------------------------------------------------ the state workload


def build_state_model(device: torch.device) -> DynamicsEnsemble:
    """The homework's model, untrained: the timing does not depend on the weights' values."""
    cfg = EnsembleConfig(ensemble_size=ENSEMBLE_SIZE, hidden_size=HIDDEN_SIZE, num_layers=NUM_LAYERS)
    model = DynamicsEnsemble(
        cfg, obs_size=STATE_SIZE, action_size=ACTION_SIZE, model_input_dims=tuple(range(1, STATE_SIZE))
    )
    return model.to(device).eval()


def naive_members(mlp: EnsembleMLP) -> list[nn.Sequential]:
    """The ensemble as the classroom writes it: one nn.Sequential of nn.Linear per member (same weights)."""
    members = []
    for e in range(mlp.ensemble_size):
        modules: list[nn.Module] = []
        for i, layer in enumerate(mlp.layers):
            linear = nn.Linear(*layer.weight.shape[1:]).to(layer.weight.device)
            with torch.no_grad():
                linear.weight.copy_(layer.weight[e].T)
                linear.bias.copy_(layer.bias[e, 0])
            modules.append(linear)
            if i < len(mlp.layers) - 1:
                modules.append(nn.ReLU())
        members.append(nn.Sequential(*modules).eval())
    return members


@torch.no_grad()
def naive_returns(model: DynamicsEnsemble, members, obs: Tensor, actions: Tensor, reward_fn: RewardFn) -> Tensor:
    """The classroom rollout of one planning problem: obs (S,), actions (N, L, A) -> returns (N,).

    Loops over members and time steps, one nn.Sequential call and one reward call per step;
    the same function as ``model.imagine_returns`` (same normalisers, same weights).
    """
    N, L, _ = actions.shape
    returns = torch.zeros(N, device=obs.device)
    for member in members:
        state = obs.expand(N, -1)  # (N, S)
        for t in range(L):
            x = torch.cat([state[:, model.input_index], actions[:, t]], dim=1)  # (N, in)
            delta = model.target_norm.denormalize(member(model.input_norm.normalize(x)))  # (N, S)
            next_state = state + delta
            returns += reward_fn(state, actions[:, t], next_state)
            state = next_state
    return returns / len(members)


@torch.no_grad()
def naive_plan(
    model: DynamicsEnsemble, members, obs: Tensor, reward_fn: RewardFn, cfg: PlannerConfig, low: Tensor, high: Tensor
) -> Tensor:
    """The classroom CEM, one environment at a time: obs (B, S) -> plans (B, L, A)."""
    N, L, J, A = cfg.candidates, cfg.horizon, cfg.elites, low.shape[0]
    plans = []
    for env_obs in obs:
        actions = low + (high - low) * torch.rand(N, L, A, device=obs.device)
        for iteration in range(cfg.iterations):
            if iteration > 0:
                actions = torch.clamp(mean + std * torch.randn(N, L, A, device=obs.device), low, high)
            returns = naive_returns(model, members, env_obs, actions, reward_fn)  # (N,)
            elites = actions[returns.topk(J).indices]  # (J, L, A)
            mean, std = elites.mean(0), elites.std(0, unbiased=False)
        plans.append(mean)
    return torch.stack(plans)


def ensemble_flops_per_plan(mlp: EnsembleMLP, cfg: PlannerConfig, num_envs: int) -> float:
    """Matmul flops only: 2*in*out per layer, per sample, step, member and iteration."""
    per_sample = sum(2 * layer.weight.shape[1] * layer.weight.shape[2] for layer in mlp.layers)
    return float(per_sample * mlp.ensemble_size * cfg.candidates * num_envs * cfg.horizon * cfg.iterations)


def kernel_contenders(mlp: EnsembleMLP, batch: int, device: torch.device) -> dict[str, Callable[[], object]]:
    """One ensemble forward per inference kernel at the planner's batch, to show which is fastest here."""
    x = torch.randn(mlp.ensemble_size, batch, mlp.layers[0].weight.shape[1], device=device)

    def forward_with(kernel: str) -> Callable[[], object]:
        def run() -> None:
            saved, mlp.kernel = mlp.kernel, kernel
            with torch.no_grad():
                mlp(x)
            mlp.kernel = saved

        return run

    return {f"kernel_{k}": forward_with(k) for k in ("stacked", "per_member")}


def bench_state(device: torch.device, repeats: int, num_envs: int) -> dict:
    torch.manual_seed(0)
    model, reward_fn = build_state_model(device), half_cheetah_reward
    mlp = model.mlp
    members = naive_members(mlp)
    low, high = -torch.ones(ACTION_SIZE, device=device), torch.ones(ACTION_SIZE, device=device)
    obs = 0.1 * torch.randn(num_envs, STATE_SIZE, device=device)  # (B, S)
    planner = make_planner(STATE_PLANNER, low, high)

    def objective(actions: Tensor) -> Tensor:
        return model.imagine_returns(obs, actions, reward_fn)  # (B, N)

    peak_run, peak_flops = peak_matmul(device)
    contenders = {
        "planner": lambda: planner.plan(objective, batch_size=num_envs),
        "naive": lambda: naive_plan(model, members, obs, reward_fn, STATE_PLANNER, low, high),
        "peak": peak_run,
        **kernel_contenders(mlp, STATE_PLANNER.candidates * num_envs, device),
    }
    graphed = cuda_graphed(contenders["planner"]) if device.type == "cuda" else None
    if graphed is not None:
        contenders["planner_graph"] = graphed
    timings = run_rounds(contenders, repeats, device)

    flops = ensemble_flops_per_plan(mlp, STATE_PLANNER, num_envs)
    planner_s, naive_s = timings.median("planner"), timings.median("naive")
    gflops, peak_gflops = flops / planner_s / 1e9, peak_flops / timings.median("peak") / 1e9
    return {
        "workload": "state",
        "ms_per_action": 1e3 * planner_s / num_envs,
        "ms_per_call": 1e3 * planner_s,
        "naive_ms_per_action": 1e3 * naive_s / num_envs,
        "gflops": gflops,
        "naive_gflops": flops / naive_s / 1e9,
        "peak_gflops": peak_gflops,
        "fraction_of_peak": gflops / peak_gflops,
        "speedup_vs_naive": naive_s / planner_s,
        "best_ms_per_action": 1e3 * timings.best("planner") / num_envs,
        "best_naive_ms_per_action": 1e3 * timings.best("naive") / num_envs,
        "best_fraction_of_peak": flops / timings.best("planner") / (peak_flops / timings.best("peak")),
        "kernel_ms": {k: 1e3 * timings.median(f"kernel_{k}") for k in ("stacked", "per_member")},
        "planner_ms_rounds": [round(1e3 * s, 1) for s in timings.rounds["planner"]],
        "naive_ms_rounds": [round(1e3 * s, 1) for s in timings.rounds["naive"]],
        **graph_figures(timings, naive_s, num_envs),
    }


def graph_figures(timings: Timings, naive_s: float | None, num_envs: int) -> dict:
    """The CUDA-graph planner's figures, when it ran."""
    if "planner_graph" not in timings.rounds:
        return {}
    graph_s = timings.median("planner_graph")
    figures = {"graph_ms_per_action": 1e3 * graph_s / num_envs}
    if naive_s is not None:
        figures["graph_speedup_vs_naive"] = naive_s / graph_s
    return figures


def describe_state(r: dict) -> str:
    return (
        f"state workload (DynamicsEnsemble.imagine_returns): ensemble {ENSEMBLE_SIZE} x "
        f"{NUM_LAYERS}x{HIDDEN_SIZE} ReLU, "
        f"K={STATE_PLANNER.candidates} L={STATE_PLANNER.horizon} {STATE_PLANNER.iterations} iterations "
        f"{STATE_PLANNER.elites} elites\n"
        f"  planner  {r['ms_per_action']:9.1f} ms/action ({r['ms_per_call']:.1f} ms/call)  {r['gflops']:6.1f} GFLOP/s "
        f"({100 * r['fraction_of_peak']:.0f}% of peak {r['peak_gflops']:.1f})\n"
        f"  naive    {r['naive_ms_per_action']:9.1f} ms/action  {r['naive_gflops']:6.1f} GFLOP/s  "
        f"-> planner is {r['speedup_vs_naive']:.2f}x faster\n"
        f"  ensemble forward at the planner batch: stacked {r['kernel_ms']['stacked']:.2f} ms, "
        f"per_member {r['kernel_ms']['per_member']:.2f} ms"
        + describe_graph(r)
    )


def describe_graph(r: dict) -> str:
    if "graph_ms_per_action" not in r:
        return ""
    line = f"\n  planner as one CUDA graph {r['graph_ms_per_action']:9.1f} ms/action"
    if "graph_speedup_vs_naive" in r:
        line += f" -> {r['graph_speedup_vs_naive']:.1f}x faster than naive"
    return line


# ----------------------------------------------------------------------------- the latent workload


def latent_flops_per_step(model, sample: bool = False) -> float:
    """Matmul flops of one imagined step for one candidate, as ``latent_planning`` does them: transition input,
    GRU, prior (its std half only when planning samples z) and reward head."""
    rssm = model.rssm
    weights = [m.weight for part in (rssm.transition_input, rssm.prior_net, model.reward_head) for m in part.modules()
               if isinstance(m, nn.Linear)]
    weights += [rssm.gru.weight_ih, rssm.gru.weight_hh]
    flops = float(sum(2 * w.numel() for w in weights))
    if not sample:
        flops -= rssm.prior_net[2].weight.numel()  # the std half of the prior's last layer is skipped
    return flops


def bench_latent(device: torch.device, repeats: int, num_envs: int) -> dict:
    try:
        from worldmodel.models.world_model import WorldModel, WorldModelConfig
    except ImportError as err:  # the pixel path is built alongside; say so instead of a traceback
        return {"workload": "latent", "error": f"worldmodel.models.world_model is not usable yet: {err}"}
    torch.manual_seed(0)
    cfg = WorldModelConfig(belief_size=200, state_size=30, hidden_size=200)
    model = WorldModel(cfg, action_size=1).to(device).eval()  # cartpole: one action
    state = model.initial_state(num_envs).map(torch.randn_like)  # (B): a non-trivial belief to plan from
    low, high = -torch.ones(1, device=device), torch.ones(1, device=device)
    planner = make_planner(LATENT_PLANNER, low, high)

    def objective(actions: Tensor) -> Tensor:
        return model.imagine_returns(state, actions)  # (B, N)

    peak_run, peak_flops = peak_matmul(device)
    contenders = {"planner": lambda: planner.plan(objective, batch_size=num_envs), "peak": peak_run}
    graphed = cuda_graphed(contenders["planner"]) if device.type == "cuda" else None
    if graphed is not None:
        contenders["planner_graph"] = graphed
    timings = run_rounds(contenders, repeats, device)
    c = LATENT_PLANNER
    flops = latent_flops_per_step(model) * c.candidates * num_envs * c.horizon * c.iterations
    planner_s = timings.median("planner")
    gflops, peak_gflops = flops / planner_s / 1e9, peak_flops / timings.median("peak") / 1e9
    return {
        "workload": "latent",
        "ms_per_action": 1e3 * planner_s / num_envs,
        "ms_per_call": 1e3 * planner_s,  # describe_latent prints it
        "gflops": gflops,
        "peak_gflops": peak_gflops,
        "fraction_of_peak": gflops / peak_gflops,
        "best_ms_per_action": 1e3 * timings.best("planner") / num_envs,
        "best_fraction_of_peak": flops / timings.best("planner") / (peak_flops / timings.best("peak")),
        "planner_ms_rounds": [round(1e3 * s, 1) for s in timings.rounds["planner"]],
        **graph_figures(timings, None, num_envs),
    }


def describe_latent(r: dict) -> str:
    if "error" in r:
        return f"latent workload skipped: {r['error']}"
    c = LATENT_PLANNER
    return (
        f"latent workload (PlaNet RSSM, belief 200, state 30, hidden 200, 1 action): K={c.candidates} "
        f"L={c.horizon} {c.iterations} iterations {c.elites} elites\n"
        f"  planner  {r['ms_per_action']:9.1f} ms/action ({r['ms_per_call']:.1f} ms/call)  {r['gflops']:6.1f} GFLOP/s "
        f"({100 * r['fraction_of_peak']:.0f}% of peak {r['peak_gflops']:.1f})"
        + describe_graph(r)
    )


# ----------------------------------------------------------------------------------------- main


WORKLOADS = {"state": (bench_state, describe_state), "latent": (bench_latent, describe_latent)}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default: cpu)")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after one warm-up (default: 5)")
    parser.add_argument(
        "--envs", "--num-envs", dest="num_envs", type=int, default=1,
        help="N environments planned for in one call (B, the planner's batch; default: 1)",
    )
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--workload", choices=["state", "latent", "all"], default="state", help="default: state")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.num_envs < 1 or (args.threads is not None and args.threads < 1):
        parser.error("--repeats, --envs and --threads must be >= 1")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    tune_cpu()  # as the run loop does (worldmodel/cpu.py)
    try:
        device = resolve_device(args.device)
    except UserError as err:
        sys.exit(f"error: {err}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    print(f"device {device}, {torch.get_num_threads()} threads, torch {torch.__version__}, num_envs {args.num_envs}")
    workloads = ["state", "latent"] if args.workload == "all" else [args.workload]
    results = []
    for name in workloads:
        bench, describe = WORKLOADS[name]
        results.append(bench(device, args.repeats, args.num_envs))
        print(describe(results[-1]), flush=True)
    summary = {"device": str(device), "threads": torch.get_num_threads(), "num_envs": args.num_envs, **results[0]}
    summary.update({r["workload"]: r for r in results[1:]})
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
