#!/usr/bin/env bash
# The GPU figures issue 8 still lacks, in one command that fits the `device` tool's 10-minute limit:
#   1. scripts/bench_pixels.py on the 100k config (planner per call for 1 and 8 envs as CUDA graphs, the
#      graphed bf16 training step at 50 x 50, env frames/s, a short run end to end): about 30 s;
#   2. seed 0 of configs/pixels_cartpole_100k.yaml alone on the GPU (targets: 100,000 env steps in <= 10 min,
#      eval return >= 500), cut at RUN_LIMIT seconds; its metrics.jsonl is copied to $OUT every 30 s, so a
#      cut run still returns its curve and its pace (`wall_time` per row).
#
# On the GPU machine (`device` tool, carry [".whl", ".gl"] after ../shared/device/pack.sh), after the
# prelude line of ../shared/device/README.md:
#   bash scripts/gpu_measure.sh
# Here, as a check that it runs (tiny sizes, a few seconds of CPU):
#   DEVICE=cpu CONFIG=configs/pixels_default.yaml BENCH_ARGS=--quick \
#     RUN_ARGS="train.episodes=2 train.seed_episodes=1 train.train_steps=2 env.max_episode_steps=8 train.chunk_length=4 train.batch_size=2" bash scripts/gpu_measure.sh
#
# Writes to $OUT (default gpu_out/): bench.txt (its last line is the bench's JSON), seed0.log,
# seed0_metrics.jsonl, seed0_config.yaml.
set -u
OUT=${OUT:-gpu_out}
DEVICE=${DEVICE:-cuda}
CONFIG=${CONFIG:-configs/pixels_cartpole_100k.yaml}
RUN_LIMIT=${RUN_LIMIT:-520}
BENCH_ARGS=${BENCH_ARGS:-}
RUN_ARGS=${RUN_ARGS:-}
PYTHON=${PYTHON:-python3}
RUN_DIR=${RUN_DIR:-runs/gpu_measure_seed0}

mkdir -p "$OUT"
stamp() { echo "[$(date -u +%H:%M:%S)] $*"; }

stamp "bench: $PYTHON scripts/bench_pixels.py --device $DEVICE --config $CONFIG $BENCH_ARGS"
# shellcheck disable=SC2086  # BENCH_ARGS and RUN_ARGS are word lists on purpose
$PYTHON scripts/bench_pixels.py --device "$DEVICE" --config "$CONFIG" $BENCH_ARGS >"$OUT/bench.txt" 2>&1
stamp "bench exit $?: $(tail -n 1 "$OUT/bench.txt")"

rm -rf "$RUN_DIR"
copy_metrics() {
    cp "$RUN_DIR/metrics.jsonl" "$OUT/seed0_metrics.jsonl" 2>/dev/null
    cp "$RUN_DIR/config.yaml" "$OUT/seed0_config.yaml" 2>/dev/null
}
# Its own output away from ours: a `sleep` left behind by the kill below must not hold our stdout open.
(while sleep 30; do copy_metrics; done) >/dev/null 2>&1 &
copier=$!
stamp "run: timeout $RUN_LIMIT $PYTHON train/agent.py --obs pixels --config $CONFIG --seed 0 --device $DEVICE logger=none --logdir $RUN_DIR --quiet $RUN_ARGS"
# shellcheck disable=SC2086
timeout "$RUN_LIMIT" $PYTHON train/agent.py --obs pixels --config "$CONFIG" --seed 0 --device "$DEVICE" \
    logger=none --logdir "$RUN_DIR" --quiet $RUN_ARGS >"$OUT/seed0.log" 2>&1
status=$?
kill "$copier" 2>/dev/null
copy_metrics
if [ "$status" -eq 124 ]; then
    stamp "run cut at $RUN_LIMIT s (the 100k run alone took longer: target <= 600 s missed)"
else
    stamp "run exit $status"
fi
tail -n 3 "$OUT/seed0.log"
tail -n 1 "$OUT/seed0_metrics.jsonl" 2>/dev/null
exit 0
