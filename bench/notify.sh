#!/usr/bin/env bash
# Notification benchmark: N new cases → N e-mails handed to a local SMTP
# server (aiosmtpd), next to the baseline measured in the same run: a
# Python smtplib sender pushing N copies of the same message to the same
# server over as many connections as the hub's pool.
#
# The hub plans a warning per case, renders it (Vietnamese text and HTML),
# signs its acknowledgement link, decrypts the subscriber's address,
# claims it in the store, sends it and records it on the case timeline; the
# baseline only sends.
#
#   bench/notify.sh [CASES]   # default 100000
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-100000}
pool=8
work=target/bench/notify
mkdir -p "$work"

command -v sqlite3 >/dev/null || {
  [ "$(id -u)" = 0 ] || { echo "missing: sqlite3" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
}
venv=target/py
"$venv/bin/python" -c "import aiosmtpd" 2>/dev/null || {
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check aiosmtpd
}
py=$venv/bin/python

cargo build --release --locked -q
khien=$PWD/target/release/khien
rate() { python3 -c "import sys; print(f'{int(float(sys.argv[1])/max(float(sys.argv[2]),1e-9)):,}')" "$1" "$2"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
since() { python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$1"; }

list=$work/indicators.txt
[ -s "$list" ] || python3 bench/gen-indicators.py 10000 > "$list"
load=$work/load-$n
[ -s "$load/radius.csv" ] || python3 bench/gen-hub-load.py "$load" "$n" "$n" "$list" >/dev/null
echo "input: $n subscribers with e-mail, one hit each; $(nproc) cores"

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# A counting SMTP server on port $sink_port, until cleanup.
sink() { # DIR
  local dir=$1
  sink_port=$(free_port)
  rm -rf "$dir"; mkdir -p "$dir"
  "$py" bench/smtp-count-sink.py "$sink_port" "$dir" > "$dir/stdout" 2>&1 &
  pids+=($!)
  for _ in $(seq 1 100); do grep -q READY "$dir/stdout" 2>/dev/null && break; sleep 0.1; done
  grep -q READY "$dir/stdout" || { echo "the SMTP sink did not start: $(cat "$dir/stdout")" >&2; exit 1; }
}
count() { cat "$1/count" 2>/dev/null || echo 0; }

data=$work/hub
rm -rf "$data"; mkdir -p "$data"
smtp_dir=$work/sink-hub
sink "$smtp_dir"
smtp_port=$sink_port
port=$(free_port)
cat > "$data/hub.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$PWD/$data"
[cases]
resolve_after = "30d"
apply_interval = "200ms"
[notifications]
interval = "500ms"
public_url = "https://canhbao.isp.example"
batch = 2000
concurrency = $((pool * 2))
[notifications.smtp]
host = "127.0.0.1"
port = $smtp_port
security = "none"
from = "An toàn thông tin ISP <canhbao@isp.example>"
pool_size = $pool
[notifications.policy]
enabled = false
channels = ["email"]
quiet_hours = ""
per_hour = {}
escalations = []
TOML
k() { "$khien" --lang en --json "$@" --config "$data/hub.toml" 2>/dev/null; }
k admin org create --slug isp --name "Bench ISP" --role operator >/dev/null
admin=$(k admin api-key create --org isp --name isp-admin --scope admin | python3 -c "import json,sys; print(json.load(sys.stdin)['secret'])")
sensor=$(k admin api-key create --org isp --name bench-sensor --scope hits:write | python3 -c "import json,sys; print(json.load(sys.stdin)['secret'])")
KHIEN_LOG=${KHIEN_LOG:-warn} "$khien" serve --config "$data/hub.toml" >/dev/null 2>"$data/hub.log" &
pids+=($!)
for _ in $(seq 1 300); do curl -s -o /dev/null "http://127.0.0.1:$port/healthz" && break; sleep 0.1; done
api() { # METHOD PATH CONTENT-TYPE DATA
  curl -sf -X "$1" -H "Authorization: Bearer $admin" -H "Content-Type: $3" --data-binary "$4" \
    "http://127.0.0.1:$port$2" >/dev/null
}
api POST /api/v1/subscribers text/csv "@$load/subscribers.csv"
api POST "/api/v1/attribution?format=radius-csv" text/plain "@$load/radius.csv"
python3 bench/send-batches.py "http://127.0.0.1:$port" "$sensor" "$load"/hits-*.ndjson >/dev/null
until [ "$(sqlite3 "$data/khien.db" "SELECT COUNT(*) FROM hit_batches WHERE cases_applied = 0")" = 0 ]; do sleep 0.2; done
cases=$(sqlite3 "$data/khien.db" "SELECT COUNT(*) FROM cases")
[ "$cases" = "$n" ] || { echo "expected $n cases, got $cases" >&2; exit 1; }

# Warnings on: the policy of the operator switches the engine loose.
start=$(date +%s.%N)
api PUT /api/v1/notification-policy application/json \
  '{"enabled": true, "channels": ["email"], "quiet_hours": "", "per_hour": {}, "escalations": []}'
until [ "$(count "$smtp_dir")" -ge "$n" ]; do
  sleep 0.1
  [ "$(since "$start" | cut -d. -f1)" -lt 1800 ] || { echo "only $(count "$smtp_dir") of $n e-mails after 30 min" >&2; exit 1; }
done
hub_s=$(since "$start")
sleep 1
got=$(count "$smtp_dir")
[ "$got" = "$n" ] || { echo "the sink got $got e-mails for $n cases" >&2; exit 1; }
sent=$(sqlite3 "$data/khien.db" "SELECT COUNT(*) FROM notifications WHERE status = 'sent'")
size=$(wc -c < "$smtp_dir/first.eml")
echo "khien: $n new cases → $sent e-mails (${size} bytes each, text + HTML) handed to the SMTP server in $hub_s s → $(rate "$n" "$hub_s") e-mails/s"

# The baseline: the same message, the same server (fresh), plain smtplib.
base_dir=$work/sink-base
sink "$base_dir"
base_port=$sink_port
base_s=$("$py" bench/smtp-send.py 127.0.0.1 "$base_port" "$smtp_dir/first.eml" "$n" "$pool")
echo "baseline: Python smtplib pushing the same $n messages over $pool connections in $base_s s → $(rate "$n" "$base_s") e-mails/s"
echo "ratio: khien $(ratio "$base_s" "$hub_s")× the baseline's rate"
