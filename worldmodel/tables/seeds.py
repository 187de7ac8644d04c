"""The seeds' tables, on the homework cheetah (``cheetah-cs285``) with the state agent:

  seed001  CS285 hw4 on its cheetah (1000-step episodes): random shooting, CEM, CEM with horizon 1,
           CEM with 50 candidates; final AverageReturn (mean of 10 evaluation episodes) per run.
  seed000  the 2017 homework (CS294-112 hw4): the random-shooting controller's iteration-0 return after training
           on 10 random episodes, and DynamicsMSE, with and without delta normalisation; then, over on-policy
           iterations, its Figs. 2-7 (with and without aggregation, without delta normalisation, the BPTT
           policy, policy-guided MPC against uniform random shooting) and DAgger, as rows and one PNG per figure.

Scales: ``full`` uses the seed's settings (configs/state_halfcheetah_{rs,cem}.yaml with SEED000_MODEL; seeds 0 1 2),
meant for a GPU; ``lite`` shrinks them for 2 CPU cores (seed001: LITE_COMMON, seed 0; seed000: SEED000_LITE, seeds
0 1 2 within an hour); seed000 has a ``smoke`` scale for the tests.
"""

from __future__ import annotations

from worldmodel.tables.types import Column, Curves, Run, Row, Scale, Table

SEED_COLUMN = "seed's figure"
RS_CONFIG = "configs/state_halfcheetah_rs.yaml"
CEM_CONFIG = "configs/state_halfcheetah_cem.yaml"
LITE_NOTE = "Lite scale: smaller settings than the seed's, so compare the ordering, not the values."
SCALES = (Scale("full", seeds=(0, 1, 2)), Scale("lite", seeds=(0,), note=LITE_NOTE))

# Lite: the same env and algorithm with 500-step episodes, 3 iterations of 2 collected and 3 evaluation
# episodes, 500 training steps, and fewer candidates for random shooting (500) and CEM (100): about
# 1/20 of the full table's compute, so it fits 20 minutes on 2 CPU cores (RESULTS.md has the measured time).
LITE_COMMON = (
    "env.episode_length=500",
    "env.num_envs=5",
    "train.train_steps=500",
    "train.iterations=3",
    "train.random_episodes=10",
    "train.mpc_episodes=2",
    "train.eval_episodes=3",
)
SEED001_SOURCE = (
    "seed 001 (CS285 hw4 via CAS4160 HW6), Tables 1 and 2: mean and std over its 10 evaluation episodes, one run"
)


def seed001_row(name: str, label: str, mean: float, std: float) -> Row:
    return Row(name, name, label, {SEED_COLUMN: (mean, std)})


SEED001 = Table(
    name="seed001",
    agent="state",
    source=SEED001_SOURCE,
    scales=SCALES,
    columns=(Column(SEED_COLUMN, SEED001_SOURCE),),
    runs=(
        Run("rs", RS_CONFIG, scales={"lite": LITE_COMMON + ("planner.candidates=500",)}),
        Run("cem", CEM_CONFIG, scales={"lite": LITE_COMMON + ("planner.candidates=100",)}),
        Run("cem_h1", CEM_CONFIG, ("planner.horizon=1",), scales={"lite": LITE_COMMON}),
        Run("cem_k50", CEM_CONFIG, ("planner.candidates=50",), scales={"lite": LITE_COMMON}),
    ),
    rows=(
        seed001_row("rs", "random shooting", 873.31, 49.89),
        seed001_row("cem", "CEM", 2302.62, 42.94),
        seed001_row("cem_h1", "CEM, horizon 1", -22422.16, 10189.61),
        seed001_row("cem_k50", "CEM, 50 candidates", 1282.38, 59.10),
    ),
    findings=(
        ("cem > rs > random policy", lambda m, random: m["cem"] > m["rs"] > random),
        ("cem_h1 far below rs and cem (below the random policy)", lambda m, random: m["cem_h1"] < random),
        ("cem_k50 between rs and cem", lambda m, random: m["rs"] < m["cem_k50"] < m["cem"]),
    ),
)

# Seed 000 (2017): 10 random paths of 1000 steps, one network 2x500, 60 epochs of batch 512 over all the data
# every iteration (1172 steps on the first 10,000 transitions), 1000 random-shooting paths of horizon 15, 15
# on-policy iterations of 10 paths, the fresh random path that measures DynamicsMSE joining the data.
SEED000_MODEL = (
    "model.ensemble_size=1",
    "model.hidden_size=500",
    "train.epochs=60",
    "train.iterations=15",
    "train.random_episodes=10",
    "train.mpc_episodes=10",
    "train.eval_episodes=0",
    "train.collect_after_last=true",
    "train.keep_mse_data=true",
    "env.num_envs=10",
)
# Section 4: 2 stacked GRUs of 32 units, batch 512, segments of 50 steps from the data's states; it tried
# learning rates 1e-5 to 1e-3 and 1 to 100 epochs, all as bad: here 1e-4 and 100 steps an iteration. No noise:
# it reports the episodes it collects, as the MPC runs do.
BPTT = ("policy.kind=bptt", "policy.hidden_size=32", "policy.num_layers=2", "policy.learning_rate=1e-4",
        "policy.train_steps=100", "policy.horizon=50", "policy.noise=0")
# Sections 5 and 6 give no sizes: an MLP 2x64 with 500 Adam steps of 512 labels an iteration. DAgger collects
# with noise 0.1 and reports 5 noiseless evaluation episodes.
GUIDED = ("policy.kind=guided",)
DAGGER = ("policy.kind=dagger", "policy.noise=0.1", "train.eval_episodes=5")
# Lite: 250-step episodes, 6 iterations, 500 steps of training an iteration instead of 60 epochs, a 2x250
# network and 250 candidates. Estimated, not measured: from the earlier iteration-0 lite table (56 s for two
# one-iteration runs of 500-step episodes), an MPC iteration here is about 13 s, a DAgger iteration (its MPC
# labels as many states as MPC acts for) about 22 s and a BPTT one (100 steps of 512 segments of 50 steps)
# about 30 s: 11-12 min a seed, about 35 min for the 18 runs on 2 CPU cores.
SEED000_LITE = (
    "env.episode_length=250",
    "train.iterations=6",
    "train.epochs=0",
    "train.train_steps=500",
    "model.hidden_size=250",
    "planner.candidates=250",
)
SEED000_LITE_NOTE = (
    "Lite scale: 250-step episodes (the seed: 1000), 6 on-policy iterations (15), 500 training steps an "
    "iteration (60 epochs), a 2x250 network (2x500) and 250 random-shooting candidates (1000); 3 seeds. Compare "
    "the orderings, not the values."
)
# Smoke (tests): 50-step episodes in 2 envs, 2 iterations, tiny networks and planner: seconds a run.
SEED000_SMOKE = (
    "env.episode_length=50",
    "env.num_envs=2",
    "model.hidden_size=16",
    "train.iterations=2",
    "train.epochs=0",
    "train.train_steps=10",
    "train.batch_size=64",
    "train.random_episodes=2",
    "train.mpc_episodes=2",
    "planner.candidates=16",
    "planner.horizon=3",
    "policy.hidden_size=8",
    "policy.train_steps=5",
    "policy.batch_size=32",
    "policy.horizon=5",
    "policy.label_batch=50",
    "logger=none",
)
SEED000_SCALES = (
    Scale("full", seeds=(0, 1, 2), note="Full scale: the seed's settings, meant for a GPU (--device cuda)."),
    Scale("lite", seeds=(0, 1, 2), note=SEED000_LITE_NOTE),
    Scale(
        "smoke",
        seeds=(0,),
        note="Smoke scale (tests): two iterations of 50-step episodes with tiny networks; the values say nothing.",
    ),
)
SEED000_SOURCE = (
    "seed 000 (CS294-112 hw4, Feinberg 2017): Fig. 1, iteration 0 of the random-shooting MPC controller (5 seeds); "
    "Figs. 2-7 and section 6 give curves and findings, no figures"
)


NOAGG = ("rs", "rs_noagg")  # the runs with and without aggregation


def seed000_run(name: str, *overrides: str) -> Run:
    return Run(name, RS_CONFIG, SEED000_MODEL + overrides, scales={"lite": SEED000_LITE, "smoke": SEED000_SMOKE})


def final(name: str, run: str, label: str, metric: str = "AverageReturn") -> Row:
    """The run's last iteration's ``metric``."""
    return Row(name, run, label, metric=metric)


SEED000 = Table(
    name="seed000",
    agent="state",
    source=SEED000_SOURCE,
    scales=SEED000_SCALES,
    columns=(Column(SEED_COLUMN, SEED000_SOURCE),),
    runs=(
        seed000_run("rs"),
        seed000_run("rs_nodelta", "model.delta_norm=false"),
        seed000_run("rs_noagg", "train.aggregate=false"),
        seed000_run("bptt", *BPTT),
        seed000_run("guided", *GUIDED),
        seed000_run("dagger", *DAGGER),
    ),
    rows=(
        Row("rs_itr0", "rs", "RS iteration-0 AverageReturn", {SEED_COLUMN: (317.0, 16.3)}, iteration=0),
        Row(
            "rs_itr0_mse", "rs", "RS iteration-0 DynamicsMSE", {SEED_COLUMN: (0.291, None)}, "DynamicsMSE", iteration=0
        ),
        Row("rs_nodelta_itr0", "rs_nodelta", "no delta normalisation: AverageReturn", iteration=0),
        Row(
            "rs_nodelta_itr0_mse",
            "rs_nodelta",
            "no delta normalisation: DynamicsMSE",
            metric="DynamicsMSE",
            iteration=0,
        ),
        final("rs_final", "rs", "RS with aggregation: last iteration's AverageReturn (Figs. 3, 5)"),
        final("rs_final_mse", "rs", "RS with aggregation: last iteration's DynamicsMSE (Fig. 2)", "DynamicsMSE"),
        final("rs_noagg_final", "rs_noagg", "RS without aggregation: last AverageReturn (Fig. 3)"),
        final("rs_noagg_final_mse", "rs_noagg", "RS without aggregation: last DynamicsMSE (Fig. 2)", "DynamicsMSE"),
        final("rs_nodelta_final", "rs_nodelta", "no delta normalisation: last AverageReturn (Fig. 5)"),
        final("bptt", "bptt", "BPTT policy, no planning: last AverageReturn (Fig. 6)"),
        final("guided", "guided", "policy-guided MPC: last AverageReturn (Fig. 7)"),
        final("dagger", "dagger", "DAgger policy, MPC labels: last AverageReturn (noiseless evaluation)"),
        final("rs_act_ms", "rs", "RS: ms per acting step of all envs (last iteration)", "act_ms"),
        final("guided_act_ms", "guided", "policy-guided MPC: ms per acting step", "act_ms"),
        final("bptt_act_ms", "bptt", "BPTT policy: ms per acting step", "act_ms"),
        final("dagger_act_ms", "dagger", "DAgger policy: ms per acting step", "act_ms"),
    ),
    findings=(
        ("rs_itr0 > random policy", lambda m, random: m["rs_itr0"] > random),
        ("aggregation lowers the DynamicsMSE (Fig. 2)", lambda m, random: m["rs_final_mse"] < m["rs_noagg_final_mse"]),
        ("delta normalisation helps (Fig. 5)", lambda m, random: m["rs_final"] > m["rs_nodelta_final"]),
        ("bptt below rs (Fig. 6: noisy and poor)", lambda m, random: m["bptt"] < m["rs_final"]),
        ("bptt acts 10x faster than rs or more (section 4)", lambda m, random: 10 * m["bptt_act_ms"] <= m["rs_act_ms"]),
        ("guided > rs (Fig. 7: much improved)", lambda m, random: m["guided"] > m["rs_final"]),
        ("dagger below rs (section 6: too little exploration)", lambda m, random: m["dagger"] < m["rs_final"]),
    ),
    curves=(
        Curves("fig2_dynamics_mse", "Fig. 2: DynamicsMSE, with and without aggregation", NOAGG, "DynamicsMSE"),
        Curves("fig3_returns", "Fig. 3: AverageReturn, with and without aggregation", NOAGG),
        Curves("fig4_costs", "Fig. 4: average cost, with and without aggregation", NOAGG, negate=True),
        Curves("fig5_delta_norm", "Fig. 5: AverageReturn, with and without delta normalisation", ("rs", "rs_nodelta")),
        Curves("fig6_bptt", "Fig. 6: AverageReturn of the BPTT policy (and of RS)", ("bptt", "rs")),
        Curves("fig7_guided", "Fig. 7: AverageReturn, policy-guided MPC against uniform RS", ("guided", "rs")),
        Curves("dagger", "Section 6: AverageReturn of the DAgger policy (and of RS)", ("dagger", "rs")),
    ),
)
