#!/usr/bin/env bash
# The GLiBRL fidelity study of docs/results.md on GridNavi at the reference budget
# (2e7 frames): the preset (configs/gridnavi/glibrl.toml) with one setting changed per
# variant, 5 seeds each, one run per core. It is one `bamdp sweep` with a `--variant`
# per row of VARIANTS: runs go seed by seed (a study cut short has the same seeds for
# every variant), and running the script again resumes interrupted runs from their
# checkpoints and skips finished ones.
#
# Usage (from the repository root):
#   scripts/glibrl_ablation.sh [--bin BAMDP] [--out DIR] [--seeds 1-5]
#                              [--frames N] [--lanes N] [--only "NAME ..."]
#
#   --bin     the bamdp binary (default: target/release/bamdp)
#   --out     the study's folder; variant NAME goes to DIR/NAME (default: sweeps/glibrl-ablation)
#   --seeds   seeds, as `bamdp sweep --seeds` takes them (default: 1-5)
#   --frames  frames per run (default: 20000000)
#   --lanes   runs at a time, each on one thread (default: 2)
#   --only    the variants to run (default: all, in the order of VARIANTS below)
#
# Then: python3 scripts/keep_runs.py DIR docs/results/<name>; bamdp report DIR --out R
set -euo pipefail

BIN=target/release/bamdp
OUT=sweeps/glibrl-ablation
SEEDS=1-5
FRAMES=20000000
LANES=2
ONLY=""
while [ $# -gt 0 ]; do
  if [ "${1#--}" != "$1" ] && [ $# -lt 2 ]; then
    echo "$1 needs a value (see the header of $0)" >&2; exit 2
  fi
  case "$1" in
    --bin) BIN=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --seeds) SEEDS=$2; shift 2 ;;
    --frames) FRAMES=$2; shift 2 ;;
    --lanes) LANES=$2; shift 2 ;;
    --only) ONLY=$2; shift 2 ;;
    *) echo "unknown option $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

# `bamdp sweep --variant` values: "NAME: KEY=VALUE ...". The preset has d = 16, basis
# [64, 64], Lambda0 = Psi0 = 0.01 I, no transition head and the diagonal policy input.
VARIANTS=(
  "d16: glibrl.features=16"
  "d24: glibrl.features=24"
  "d32: glibrl.features=32"
  "d48: glibrl.features=48"
  "prior0.001: glibrl.init_lambda0=0.001 glibrl.init_psi0=0.001"
  "prior0.1: glibrl.init_lambda0=0.1 glibrl.init_psi0=0.1"
  "prior1: glibrl.init_lambda0=1.0 glibrl.init_psi0=1.0"
  "basis32: glibrl.basis_hidden=[32,32]"
  "basis128: glibrl.basis_hidden=[128,128]"
  "transition: glibrl.transition_dims=[0,1]"
  "correlations: glibrl.policy_input=correlations"
  "probes: glibrl.policy_input=probes"
)

if [ "$BIN" = target/release/bamdp ] && [ ! -x "$BIN" ]; then
  cargo build --release
fi

args=()
for v in "${VARIANTS[@]}"; do
  name=${v%%:*}
  if [ -z "$ONLY" ] || [[ " $ONLY " == *" $name "* ]]; then
    args+=(--variant "$v")
  fi
done
if [ ${#args[@]} -eq 0 ]; then
  echo "--only \"$ONLY\" names no variant of $0" >&2; exit 2
fi
exec "$BIN" sweep --config configs/gridnavi/glibrl.toml --seeds "$SEEDS" \
  --set run.total_frames="$FRAMES" --set run.threads=1 "${args[@]}" \
  --jobs "$LANES" --out "$OUT"
