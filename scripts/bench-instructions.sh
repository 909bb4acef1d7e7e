#!/usr/bin/env bash
# Instructions per analysis tick of a `serin` binary, counted by valgrind's callgrind while
# `serin-bench controller` drives it: a measure that does not move with the machine's speed,
# for comparing two builds where CPU seconds drift by ±15 % from run to run (BENCHMARKS.md).
#
#   scripts/bench-instructions.sh [SERIN] [N] [WINDOW]
#     SERIN   the binary to measure (default target/release/serin)
#     N       canaries (default 100; under callgrind the controller runs ~50x slower)
#     WINDOW  seconds counted (default 30), from the bench's "measuring" line
#
# Needs valgrind (`apt-get install valgrind`) and `cargo build --release --workspace --bins`.
# Prints the instructions counted, the ticks the bench saw in its window and their ratio, and
# leaves the callgrind profile (`callgrind_annotate` reads it) in the printed directory.
set -euo pipefail
cd "$(dirname "$0")/.."

serin=$(realpath "${1:-target/release/serin}")
canaries=${2:-100}
window=${3:-30}
for tool in valgrind callgrind_control; do
    command -v "$tool" > /dev/null || { echo "$tool not found: apt-get install valgrind" >&2; exit 1; }
done
[ -x target/release/serin-bench ] || { echo "build first: cargo build --release --workspace --bins" >&2; exit 1; }

out=$(mktemp -d /tmp/serin-instructions.XXXXXX)
cat > "$out/serin" <<EOF
#!/usr/bin/env bash
exec valgrind --tool=callgrind --callgrind-out-file=$out/callgrind.%p "$serin" "\$@"
EOF
chmod +x "$out/serin"

target/release/serin-bench controller --canaries "$canaries" --interval 10 --window "$window" \
    --setup-timeout 900 --serin "$out/serin" > "$out/bench.out" 2> "$out/bench.err" &
bench=$!
until grep -q measuring "$out/bench.err" 2> /dev/null; do
    kill -0 "$bench" 2> /dev/null || { cat "$out/bench.err" >&2; exit 1; }
    sleep 0.2
done
# The controller is the bench's child running under valgrind (its wrapper exec'd it).
controller=$(pgrep -P "$bench" -f "callgrind-out-file=$out/" | head -1)
callgrind_control -z "$controller" > /dev/null 2>&1
sleep "$window"
callgrind_control -d "$controller" > /dev/null 2>&1
wait "$bench"

instructions=$(awk '/^(summary|totals):/ {print $2; exit}' "$out/callgrind.$controller.1")
ticks=$(grep -o '[0-9]* ticks done' "$out/bench.out" | awk '{print $1}')
echo "instructions $instructions, ticks $ticks, per tick $((instructions / ticks)) (profile: $out/callgrind.$controller.1)"
grep "^| $canaries " "$out/bench.out"
