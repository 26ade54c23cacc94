#!/usr/bin/env bash
# Runs exactly the learner-speed floor benchmarks of docs/benchmarks.md ("Learner speed")
# and prints one table:
#   - the whole training loop of the GridNavi VariBAD, RL2 and GLiBRL presets
#     (`bamdp bench --config configs/gridnavi/<m>.toml`),
#   - the learning half of the ML10 RL2, VariBAD and GLiBRL presets
#     (`bamdp bench --learn-only --config configs/ml10/<m>.toml`),
#   - the Belief-SMC planner at the reference budget K = 64, K_Omega = 8, D = 8 on 2
#     threads with the oracle, VariBAD and GLiBRL beliefs (`cargo bench --bench smc -- ref`).
#
# Usage (from the repository root):
#   scripts/bench_floors.sh [--bin BAMDP] [--old OLD_BAMDP] [--old-smc OLD_SMC_BENCH]
#                           [--seconds S] [--learn-seconds S] [--repeats N] [--no-planner]
#                           [--no-ml10] [--no-gridnavi]
#
#   --bin       the bamdp binary to measure (default: target/release/bamdp, built first
#               with `cargo build --release` when it is the default)
#   --old       a second bamdp binary (e.g. built at an older commit): every row is run
#               with both binaries alternately (old, new, old, new, ...) so both see the
#               same machine load, and the table gets old, new and new/old columns
#   --old-smc   the old checkout's planner bench binary (target/release/deps/smc-*), for
#               the planner rows of the comparison
#   --seconds   seconds per GridNavi measurement (default 10)
#   --learn-seconds  seconds per ML10 learn-only measurement (default 1: at least one
#               timed update of 50,000 frames after 2 warm-up updates)
#   --repeats   measurements per row and binary; the table shows their median (default 1)
#   --no-planner  skip the planner rows (they build the bench in release mode)
#   --no-ml10   skip the ML10 learn-only rows
#   --no-gridnavi  skip the GridNavi rows
#
# The machine's load (`uptime`) is printed before and after: figures taken while other
# jobs run are lower than a quiet machine's; compare binaries only within one run.
set -euo pipefail

BIN=""
OLD=""
OLD_SMC=""
SECONDS_GN=10
SECONDS_LEARN=1
REPEATS=1
PLANNER=1
ML10=1
GRIDNAVI=1
while [ $# -gt 0 ]; do
    case "$1" in
        --bin) BIN="$2"; shift 2 ;;
        --old) OLD="$2"; shift 2 ;;
        --old-smc) OLD_SMC="$2"; shift 2 ;;
        --seconds) SECONDS_GN="$2"; shift 2 ;;
        --learn-seconds) SECONDS_LEARN="$2"; shift 2 ;;
        --repeats) REPEATS="$2"; shift 2 ;;
        --no-planner) PLANNER=0; shift ;;
        --no-ml10) ML10=0; shift ;;
        --no-gridnavi) GRIDNAVI=0; shift ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "bench_floors.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
    esac
done

if [ -z "$BIN" ]; then
    cargo build --release --quiet
    BIN="${CARGO_TARGET_DIR:-target}/release/bamdp"
fi
for b in "$BIN" ${OLD:+"$OLD"} ${OLD_SMC:+"$OLD_SMC"}; do
    if [ ! -x "$b" ]; then
        echo "bench_floors.sh: '$b' is not an executable file" >&2
        exit 2
    fi
done

SMC=""
if [ "$PLANNER" = 1 ]; then
    # The planner bench binary of this checkout (bench profile = release).
    SMC=$(cargo bench --bench smc --no-run --message-format=json 2>/dev/null |
        python3 -c 'import json,sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == "smc" and m.get("executable"):
        print(m["executable"])')
fi

median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }

# fps of one `bamdp bench` run: BINARY ARGS...
bench_fps() {
    "$@" | python3 -c 'import json,sys; print(json.load(sys.stdin)["fps"])'
}

# particle-steps/s of one belief at the reference budget on 2 threads: SMC_BINARY BELIEF
smc_rate() {
    SMC_BENCH_REPEATS=3 "$1" ref "$2" | awk '/threads=2/ {print $(NF-1)}'
}

TABLE=$(mktemp)
trap 'rm -f "$TABLE"' EXIT

# One row: NAME FLOOR KIND ARGS... (KIND = bamdp or smc)
row() {
    local name="$1" floor="$2" kind="$3"
    shift 3
    local new_vals="" old_vals=""
    for _ in $(seq "$REPEATS"); do
        if [ "$kind" = bamdp ]; then
            if [ -n "$OLD" ]; then old_vals+="$(bench_fps "$OLD" "$@")"$'\n'; fi
            new_vals+="$(bench_fps "$BIN" "$@")"$'\n'
        else
            if [ -n "$OLD_SMC" ]; then old_vals+="$(smc_rate "$OLD_SMC" "$@")"$'\n'; fi
            new_vals+="$(smc_rate "$SMC" "$@")"$'\n'
        fi
    done
    local new old
    new=$(printf '%s' "$new_vals" | median)
    old=$(printf '%s' "$old_vals" | median)
    printf '%s\t%s\t%s\t%s\n' "$name" "$floor" "$old" "$new" >>"$TABLE"
    printf '  %-34s new %12.0f%s\n' "$name" "$new" "$([ "$old" != nan ] && printf '   old %12.0f' "$old")" >&2
}

echo "load before: $(uptime)" >&2
for m in $([ "$GRIDNAVI" = 1 ] && echo varibad rl2 glibrl); do
    floor=$(case $m in varibad) echo 80000 ;; rl2) echo 120000 ;; glibrl) echo "1.1x VariBAD" ;; esac)
    row "gridnavi/$m frames/s" "$floor" bamdp bench --config "configs/gridnavi/$m.toml" --seconds "$SECONDS_GN"
done
for m in $([ "$ML10" = 1 ] && echo rl2 varibad glibrl); do
    row "ml10/$m learn-only frames/s" "4x 735c3f7" bamdp bench --learn-only --config "configs/ml10/$m.toml" --seconds "$SECONDS_LEARN"
done
if [ "$PLANNER" = 1 ]; then
    for b in oracle varibad glibrl; do
        row "planner $b particle-steps/s" 1000000 smc "$b"
    done
fi
echo "load after:  $(uptime)" >&2

python3 - "$TABLE" "$BIN" "$OLD" "$REPEATS" <<'EOF'
import math, sys
path, new_bin, old_bin, repeats = sys.argv[1:]
rows = [line.rstrip("\n").split("\t") for line in open(path)]
num = lambda s: float(s) if s not in ("", "nan") else math.nan
print(f"new: {new_bin}" + (f"\nold: {old_bin}" if old_bin else "") + f"\nmedian of {repeats} run(s) per binary, alternated\n")
head = "| benchmark | floor | " + ("old | new | new / old |" if old_bin else "measured |")
print(head)
print("|" + "---|" * (head.count("|") - 1))
fps = {r[0]: num(r[3]) for r in rows}
for name, floor, old, new in rows:
    o, n = num(old), num(new)
    if name == "gridnavi/glibrl frames/s" and "gridnavi/varibad frames/s" in fps:
        floor += f" (now {n / fps['gridnavi/varibad frames/s']:.2f}x)"
    cells = [name, floor] + ([f"{o:,.0f}", f"{n:,.0f}", f"{n / o:.2f}x"] if old_bin else [f"{n:,.0f}"])
    print("| " + " | ".join(cells) + " |")
EOF
