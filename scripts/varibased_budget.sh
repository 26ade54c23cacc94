#!/usr/bin/env bash
# VariBASeD's planning-budget claims (docs/results.md, "VariBASeD and GLiBRL x SMC"):
# VariBASeD with training budgets K in {4, 16, 64}, with our settings and with the
# settings of the authors' related public code, against RL2, VariBAD and GLiBRL x SMC,
# on GridNavi (RL2's convergence budget, 5e6 frames) and on functions-1d / -2d. Each
# env is one `bamdp sweep` (`--variant` per row below), seed by seed, so a study cut
# short has the same seeds everywhere; running the script again resumes interrupted
# runs from their checkpoints and skips finished ones.
#
# Usage (from the repository root):
#   scripts/varibased_budget.sh [--bin BAMDP] [--out DIR] [--seeds 1-5] [--lanes N]
#                               [--envs "gridnavi functions-1d functions-2d"]
#                               [--stage tune|budget]
#
#   --stage tune    K_Omega, D and eta at K = 16 on GridNavi at 1e6 frames, 2 seeds:
#                   pick the planner's settings before the long runs
#   --stage budget  (default) the study itself; pass the tuned settings with
#                   BUDGET_SETS="smc.nested=8 smc.depth=4 ..." in the environment
#
# Cost on the project's 2-core machine (one run per core): VariBASeD's GridNavi runs
# take ~4 min per 1e6 frames at K = 16, D = 4 and grow linearly in K, so the GridNavi
# part of the budget stage is ~10 core-hours at 5 seeds; the function envs ~1.
#
# Then: python3 scripts/keep_runs.py DIR docs/results/<name>; bamdp report DIR/<env> --out R
set -euo pipefail

BIN=target/release/bamdp
OUT=sweeps/varibased-budget
SEEDS=1-5
LANES=2
ENVS="gridnavi functions-1d functions-2d"
STAGE=budget
while [ $# -gt 0 ]; do
  if [ "${1#--}" != "$1" ] && [ $# -lt 2 ]; then
    echo "$1 needs a value (see the header of $0)" >&2; exit 2
  fi
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --lanes) LANES=$2; shift 2 ;;
    --envs) ENVS=$2; shift 2 ;;
    --stage) STAGE=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

if [ "$BIN" = target/release/bamdp ] && [ ! -x "$BIN" ]; then
  cargo build --release
fi

# The authors' related public code: a recurrent encoder of 128 units, MLPs [256, 256],
# AdamW at lr 1e-3, gradient clipping at 1.0, discount 0.9 and TD(lambda) 0.9.
AUTHORS="varibad.gru_hidden=128 policy.hidden=[256,256] ppo.lr=1e-3 ppo.max_grad_norm=1.0 ppo.gamma=0.9 ppo.gae_lambda=0.9"

case "$STAGE" in
  tune)
    exec "$BIN" sweep --config configs/gridnavi/varibased.toml --seeds 1-2 \
      --set run.total_frames=1000000 --set run.threads=1 \
      --variant "preset:" \
      --variant "nested8: smc.nested=8" \
      --variant "depth2: smc.depth=2" \
      --variant "depth8: smc.depth=8" \
      --variant "eta0.1: smc.eta=0.1" \
      --variant "eta2: smc.eta=2.0" \
      --jobs "$LANES" --out "$OUT/tune"
    ;;
  budget) ;;
  *) echo "--stage is tune or budget, not $STAGE" >&2; exit 2 ;;
esac

for env in $ENVS; do
  case "$env" in
    gridnavi) frames=5000000 ;;
    functions-1d) frames=200000 ;;
    functions-2d) frames=100000 ;;
    *) echo "--envs: $env is not gridnavi, functions-1d or functions-2d" >&2; exit 2 ;;
  esac
  variants=()
  for k in 4 16 64; do
    variants+=(--variant "K$k: smc.particles=$k ${BUDGET_SETS:-}")
    variants+=(--variant "K$k-authors: smc.particles=$k ${BUDGET_SETS:-} $AUTHORS")
  done
  "$BIN" sweep --config "configs/$env/varibased.toml" --seeds "$SEEDS" \
    --set run.total_frames=$frames --set run.threads=1 "${variants[@]}" \
    --jobs "$LANES" --out "$OUT/$env/varibased"
  "$BIN" sweep --config "configs/$env/rl2.toml" --config "configs/$env/varibad.toml" \
    --config "configs/$env/glibrl-smc.toml" --seeds "$SEEDS" \
    --set run.total_frames=$frames --set run.threads=1 \
    --jobs "$LANES" --out "$OUT/$env/baselines"
done
