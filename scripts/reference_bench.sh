#!/usr/bin/env bash
# Measures the PyTorch reference implementation of VariBAD (github.com/lmzintgraf/varibad,
# CPU, 16 environment processes) and bamdp on the same GridNavi presets, alternately in
# one window (reference, bamdp, reference, bamdp, ...), so both see the same machine
# load, and prints frames/s and the ratio bamdp / reference (docs/benchmarks.md,
# "Against the reference, side by side").
#
# Usage (from the repository root):
#   scripts/reference_bench.sh [--setup-only] [--bin BAMDP] [--methods "varibad rl2"]
#                              [--rounds N] [--updates N] [--eval-interval N]
#                              [--seconds S] [--ref-threads N|default]
#                              [--ref-dir DIR] [--venv DIR]
#
#   --setup-only     clone the reference and set up its Python environment, then stop
#   --bin            the bamdp binary (default: target/release/bamdp, built first with
#                    `cargo build --release` when it is the default)
#   --methods        which presets to compare (default "varibad rl2": the reference's
#                    `--env-type gridworld_varibad` / `gridworld_rl2` against
#                    configs/gridnavi/varibad.toml / rl2.toml)
#   --rounds         reference + bamdp pairs per method (default 2)
#   --updates        the reference's updates per run (default 100; 960 frames each)
#   --eval-interval  the reference's evaluation and log interval in updates (default 50)
#   --seconds        seconds per `bamdp bench` run (default 20)
#   --ref-threads    PyTorch/OpenMP threads of the reference's processes (default 1, its
#                    fastest setting here: with PyTorch's default of one thread per core,
#                    the learner's OpenMP threads compete with the 16 environment
#                    processes for the 2 cores; `default` leaves PyTorch's choice)
#   --ref-dir        where the reference is cloned (default ../ref-varibad, outside the
#                    repository)
#   --venv           its Python environment (default ../ref-venv)
#
# Set-up (done by the script when --venv does not exist yet; PyPI only):
#   python3 -m venv --system-site-packages VENV
#   VENV/bin/pip install torch==2.15.0        # PyPI's Linux wheel; its CUDA libraries
#                                             # are only loaded, the code runs on the CPU
#   VENV/bin/pip install gym==0.17.2 tensorboard
# The reference pins torch 1.5.1 / numpy 1.22 / gym 0.17.2 (requirements.txt). It runs
# unchanged on torch 2.15 and today's numpy except for the removed alias `np.bool`, which
# the script replaces by `bool` in the clone (one sed line, below); nothing else of the
# reference is modified.
#
# How the reference's frames/s is read: it counts num_processes (16) frames per
# environment step, i.e. 16 x 60 = 960 frames per update, and prints
# "Updates U, Frames F, FPS ..." at every evaluation (every --eval-interval updates);
# its FPS figure is averaged since start-up. The script stamps each printed line with
# the wall-clock time and takes the steady rate between the first evaluation after
# start-up (update eval-interval - 1) and the last one: (F_last - F_first) /
# (t_last - t_first). That window contains the evaluations themselves (every
# eval-interval updates, as in a training run) but not the start-up.
#
# The machine's load (`uptime`) is printed before each measurement.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
SETUP_ONLY=0
BIN=""
METHODS="varibad rl2"
ROUNDS=2
UPDATES=100
EVAL_INTERVAL=50
SECONDS_BAMDP=20
REF_THREADS=1
REF_DIR="$ROOT/../ref-varibad"
VENV="$ROOT/../ref-venv"
REF_GIT="${REF_GIT:-https://github.com/lmzintgraf/varibad}"
REF_COMMIT=57e1795
while [ $# -gt 0 ]; do
    case "$1" in
        --setup-only) SETUP_ONLY=1; shift ;;
        --bin) BIN="$2"; shift 2 ;;
        --methods) METHODS="$2"; shift 2 ;;
        --rounds) ROUNDS="$2"; shift 2 ;;
        --updates) UPDATES="$2"; shift 2 ;;
        --eval-interval) EVAL_INTERVAL="$2"; shift 2 ;;
        --seconds) SECONDS_BAMDP="$2"; shift 2 ;;
        --ref-threads) REF_THREADS="$2"; shift 2 ;;
        --ref-dir) REF_DIR="$2"; shift 2 ;;
        --venv) VENV="$2"; shift 2 ;;
        -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
        *) echo "reference_bench.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done
for m in $METHODS; do
    case "$m" in
        varibad|rl2) ;;
        *) echo "reference_bench.sh: --methods: '$m' is not one of varibad, rl2" >&2; exit 2 ;;
    esac
done

# --- set-up -------------------------------------------------------------------------
if [ ! -d "$REF_DIR/.git" ]; then
    git clone "$REF_GIT" "$REF_DIR"
fi
git -C "$REF_DIR" checkout --quiet "$REF_COMMIT"
# numpy >= 1.24 removed the alias np.bool (the only incompatibility met on this path).
sed -i 's/dtype=np\.bool)/dtype=bool)/' "$REF_DIR/environments/env_utils/vec_env/dummy_vec_env.py"
if [ ! -x "$VENV/bin/python" ]; then
    python3 -m venv --system-site-packages "$VENV"
    "$VENV/bin/pip" install torch==2.15.0
    "$VENV/bin/pip" install gym==0.17.2 tensorboard
fi
CUDA_VISIBLE_DEVICES="" "$VENV/bin/python" -c 'import torch, gym
a = torch.randn(64, 64)
assert torch.allclose(a @ torch.eye(64), a)
assert not torch.cuda.is_available()
print("reference environment: torch", torch.__version__, "gym", gym.__version__, "(CPU)")'
[ "$SETUP_ONLY" = 1 ] && exit 0

if [ -z "$BIN" ]; then
    (cd "$ROOT" && cargo build --release --quiet)
    BIN="${CARGO_TARGET_DIR:-$ROOT/target}/release/bamdp"
fi
if [ ! -x "$BIN" ]; then
    echo "reference_bench.sh: '$BIN' is not an executable file" >&2
    exit 2
fi

LOGS=$(mktemp -d)
trap 'rm -rf "$LOGS"' EXIT

# Steady frames/s of one reference run: METHOD
ref_fps() {
    local log="$LOGS/ref-$1-$RANDOM.log"
    local threads=()
    [ "$REF_THREADS" != default ] && threads=(OMP_NUM_THREADS="$REF_THREADS" MKL_NUM_THREADS="$REF_THREADS")
    (cd "$REF_DIR" && env "${threads[@]}" CUDA_VISIBLE_DEVICES="" PYTHONUNBUFFERED=1 "$VENV/bin/python" main.py \
        --env-type "gridworld_$1" \
        --num_frames $((UPDATES * 960)) \
        --eval_interval "$EVAL_INTERVAL" --log_interval "$EVAL_INTERVAL" \
        --results_log_dir "$LOGS/runs" 2>&1) |
        python3 -u -c 'import sys, time
for line in sys.stdin:
    sys.stdout.write(f"{time.time():.3f} {line}")' >"$log"
    python3 - "$log" "$EVAL_INTERVAL" <<'EOF'
import re, sys
path, interval = sys.argv[1], int(sys.argv[2])
points = []
for line in open(path):
    m = re.match(r"(\S+) Updates (\d+), Frames (\d+),", line)
    if m and int(m.group(2)) >= interval - 1:
        points.append((float(m.group(1)), int(m.group(3))))
if len(points) < 2:
    sys.exit(f"reference_bench.sh: fewer than two log points after start-up in {path}:\n" + open(path).read()[-3000:])
(t0, f0), (t1, f1) = points[0], points[-1]
print(f"{(f1 - f0) / (t1 - t0):.0f}")
EOF
}

bamdp_fps() {
    (cd "$ROOT" && "$BIN" bench --config "configs/gridnavi/$1.toml" --seconds "$SECONDS_BAMDP") |
        python3 -c 'import json, sys; print(round(json.load(sys.stdin)["fps"]))'
}

median() { sort -g | awk '{v[NR] = $1} END {if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

TABLE="$LOGS/table"
for m in $METHODS; do
    refs=""
    ours=""
    for r in $(seq "$ROUNDS"); do
        echo "[$m $r/$ROUNDS] load: $(uptime)" >&2
        f=$(ref_fps "$m")
        echo "  reference gridworld_$m: $f frames/s" >&2
        refs+="$f"$'\n'
        echo "[$m $r/$ROUNDS] load: $(uptime)" >&2
        f=$(bamdp_fps "$m")
        echo "  bamdp configs/gridnavi/$m.toml: $f frames/s" >&2
        ours+="$f"$'\n'
    done
    printf '%s\t%s\t%s\t%s\t%s\n' "$m" \
        "$(printf '%s' "$refs" | paste -sd, -)" "$(printf '%s' "$ours" | paste -sd, -)" \
        "$(printf '%s' "$refs" | median)" "$(printf '%s' "$ours" | median)" >>"$TABLE"
done
echo "load after: $(uptime)" >&2

python3 - "$TABLE" "$BIN" "$EVAL_INTERVAL" "$REF_THREADS" <<'EOF'
import sys
path, binary, interval, threads = sys.argv[1:]
print(f"bamdp: {binary}\nreference: lmzintgraf/varibad, CPU, 16 processes, evaluation every {interval} updates, threads: {threads}\n")
print("| preset | reference runs | bamdp runs | reference median | bamdp median | bamdp / reference |")
print("|---|---|---|---|---|---|")
for line in open(path):
    m, refs, ours, ref, our = line.rstrip("\n").split("\t")
    print(f"| {m} | {refs} | {ours} | {float(ref):,.0f} | {float(our):,.0f} | {float(our) / float(ref):.1f}x |")
EOF
