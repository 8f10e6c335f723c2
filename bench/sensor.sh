#!/usr/bin/env bash
# Sensor benchmark: one generated file of DNS log lines (Unbound
# `log-queries`, realistic name mix, ~0.1 % hits) against 1 M domain and
# 100 k IP indicators, measured in one run next to `wc -l` and
# `grep -F -f` on the same file; then dnstap over a unix socket from a
# generator. Prints every figure as JSON lines and a ratio summary.
#
#   bench/sensor.sh [LINES] [DOMAINS] [IPS] [FRAMES]
#
# Defaults: 10 000 000 lines, 1 000 000 domains, 100 000 IPs, 5 000 000
# dnstap frames. Data goes to target/bench-sensor (reused when present).
set -euo pipefail
cd "$(dirname "$0")/.."

LINES=${1:-10000000}
DOMAINS=${2:-1000000}
IPS=${3:-100000}
FRAMES=${4:-5000000}
DIR=target/bench-sensor
mkdir -p "$DIR"

cargo build --release -q -p khien
cargo build --release -q -p khien-sensor --example dnstap_gen
KHIEN=target/release/khien
GEN=target/release/examples/dnstap_gen

if [[ ! -f "$DIR/expected.json" ]] || ! grep -q "\"lines\": $LINES," "$DIR/expected.json"; then
  python3 bench/gen-dns-log.py "$DIR" "$LINES" "$DOMAINS" "$IPS" >/dev/null
fi

# Best of three whole-process runs, in seconds.
best() {
  local best=""
  for _ in 1 2 3; do
    local s e
    s=$(date +%s.%N)
    "$@" >/dev/null 2>&1 || true
    e=$(date +%s.%N)
    best=$(python3 -c "a='$best'; d=$e-$s; print(d if a=='' or d<float(a) else a)")
  done
  echo "$best"
}

export KHIEN_DATABASE="$DIR/khien.db"
if [[ ! -f "$DIR/snapshot.bin" ]]; then
  rm -f "$DIR"/khien.db*
  $KHIEN --lang en intel import --source bench "$DIR/indicators.txt" >/dev/null
fi
snap_start=$(date +%s.%N)
$KHIEN --lang en intel snapshot --out "$DIR/snapshot.bin" >/dev/null
snap_end=$(date +%s.%N)
snap_bytes=$(stat -c %s "$DIR/snapshot.bin")

cat "$DIR/queries.log" >/dev/null   # page cache
wc_s=$(best wc -l "$DIR/queries.log")
grep_s=$(best grep -F -c -f "$DIR/patterns.txt" "$DIR/queries.log")
grep_hits=$(grep -F -c -f "$DIR/patterns.txt" "$DIR/queries.log")

run_sensor() {
  rm -rf "$DIR/state-$1"
  $KHIEN --lang en sensor --once --workers "$1" --sensor bench \
    --state-dir "$DIR/state-$1" --snapshot "$DIR/snapshot.bin" \
    --input "file:$DIR/queries.log:unbound" --output "ndjson:$DIR/hits-$1.ndjson"
}
rm -f "$DIR"/hits-*.ndjson
one_s=$(best run_sensor 1)
two_s=$(best run_sensor 2)
rm -f "$DIR"/hits-1.ndjson
run_sensor 1 2>/dev/null
sensor_hits=$(python3 -c "
import json,sys
print(sum(json.loads(l)['count'] for l in open('$DIR/hits-1.ndjson')))")
expected_hits=$(python3 -c "import json; print(json.load(open('$DIR/expected.json'))['hit_lines'])")

# dnstap: a live sensor on a unix socket, the generator as fast as it takes.
rm -rf "$DIR/state-dnstap" "$DIR/dnstap.sock"
$KHIEN --lang en --json sensor --workers 1 --sensor bench --state-dir "$DIR/state-dnstap" \
  --snapshot "$DIR/snapshot.bin" --input "dnstap:unix:$DIR/dnstap.sock" \
  --output "ndjson:$DIR/hits-dnstap.ndjson" 2>"$DIR/dnstap-sensor.log" &
sensor_pid=$!
for _ in $(seq 100); do [[ -S "$DIR/dnstap.sock" ]] && break; sleep 0.1; done
gen_json=$($GEN "$DIR/dnstap.sock" "$FRAMES")
sleep 1
kill -TERM $sensor_pid
wait $sensor_pid || true
dnstap_summary=$(grep '^{' "$DIR/dnstap-sensor.log" | tail -1)

python3 - "$LINES" "$wc_s" "$grep_s" "$one_s" "$two_s" "$grep_hits" "$sensor_hits" "$expected_hits" \
  "$snap_start" "$snap_end" "$snap_bytes" "$DOMAINS" "$IPS" "$gen_json" "$dnstap_summary" <<'EOF'
import json, sys
(lines, wc, grep, one, two, grep_hits, sensor_hits, expected, s0, s1, sbytes, domains, ips,
 gen, summary) = sys.argv[1:]
lines, wc, grep, one, two = int(lines), float(wc), float(grep), float(one), float(two)
gen, summary = json.loads(gen), json.loads(summary)
n = int(domains) + int(ips)
result = {
    "lines": lines,
    "wc_l_seconds": round(wc, 3),
    "grep_F_seconds": round(grep, 3),
    "sensor_1_worker_seconds": round(one, 3),
    "sensor_2_workers_seconds": round(two, 3),
    "sensor_1_worker_lines_per_second": round(lines / one),
    "sensor_vs_wc_l": round(wc / one, 3),
    "sensor_speedup_vs_grep_F": round(grep / one, 1),
    "hits": {"sensor": int(sensor_hits), "grep_F": int(grep_hits), "generator": int(expected)},
    "snapshot": {"indicators": n, "build_seconds_from_store": round(float(s1) - float(s0), 2),
                 "bytes": int(sbytes), "bytes_per_indicator": round(int(sbytes) / n, 1)},
    "dnstap": {"frames": gen["frames"], "frames_per_second": gen["frames_per_second"],
               "sensor_events": summary.get("events"), "drops": summary.get("drops"),
               "decode_errors": summary.get("decode_errors")},
}
print(json.dumps(result, indent=2))
EOF
