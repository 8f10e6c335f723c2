#!/usr/bin/env bash
# Hub benchmark, each figure next to a baseline measured in the same run:
#
# - public indicator lookups (GET /api/v1/lookup/indicator) with N TLP:CLEAR
#   indicators, driven by wrk over 100,000 different values, next to nginx
#   serving a static JSON answer of the same size to the same wrk;
# - hit ingest with attribution on (POST /api/v1/hits, batches of 10,000,
#   one keep-alive connection as a sensor uses) into SQLite, next to
#   `sqlite3 .import` of the same hit keys into a table with the same key;
# - the case job resolving every case the ingest opened.
#
#   bench/hub.sh [INDICATORS] [SUBSCRIBERS] [HITS]   # default 1000000 100000 1000000
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
subs=${2:-100000}
hits=${3:-1000000}
work=target/bench/hub
mkdir -p "$work"

need=()
command -v wrk >/dev/null || need+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
command -v sqlite3 >/dev/null || need+=(sqlite3)
if [ ${#need[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || { echo "missing: ${need[*]}" >&2; exit 2; }
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)

cargo build --release --locked -q
khien=$PWD/target/release/khien
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }
rate() { python3 -c "import sys; print(f'{int(float(sys.argv[1])/max(float(sys.argv[2]),1e-9)):,}')" "$1" "$2"; }
free_port() { python3 -c "import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); print(s.getsockname()[1])"; }
wait_http() { # URL: until it answers anything
  for _ in $(seq 1 600); do curl -s -o /dev/null "$1" && return 0; sleep 0.1; done
  echo "no answer from $1" >&2; return 1
}

list=target/bench/intel/indicators-$n.txt
mkdir -p "$(dirname "$list")"
[ -s "$list" ] || python3 bench/gen-indicators.py "$n" > "$list"
load=$work/load-$subs-$hits
[ -s "$load/lookups.txt" ] || python3 bench/gen-hub-load.py "$load" "$subs" "$hits" "$list"
echo "input: $n indicators, $subs subscribers, $hits hits; $(nproc) cores"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# --- Lookups ---------------------------------------------------------------------
data=$work/lookup-data
rm -rf "$data"
mkdir -p "$data"
"$khien" --lang en --database "$data/khien.db" intel import --no-default-warninglists \
  --source bench --tlp clear --family bench --type c2 "$list" >/dev/null
port=$(free_port)
cat > "$data/hub.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$PWD/$data"
[lookups]
requests_per_minute = 1000000000
burst = 1000000000
TOML
KHIEN_LOG=warn "$khien" serve --config "$data/hub.toml" >/dev/null 2>"$data/hub.log" &
pids+=($!)
wait_http "http://127.0.0.1:$port/healthz"
# The public snapshot is built at start; lookups answer 503 until then.
until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/api/v1/lookup/indicator?value=x.example")" = 200 ]; do sleep 0.2; done
answer=$(curl -s "http://127.0.0.1:$port/api/v1/lookup/indicator?value=$(head -1 "$load/lookups.txt")")

nginx_dir=$PWD/$work/nginx
nginx_port=$(free_port)
rm -rf "$nginx_dir"; mkdir -p "$nginx_dir/root/api/v1/lookup" "$nginx_dir/logs"
printf '%s' "$answer" > "$nginx_dir/root/api/v1/lookup/indicator"
cat > "$nginx_dir/nginx.conf" <<CONF
$( [ "$(id -u)" = 0 ] && echo "user root;" )
worker_processes auto;
daemon off;
pid $nginx_dir/nginx.pid;
error_log $nginx_dir/logs/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  default_type application/json;
  server {
    listen 127.0.0.1:$nginx_port;
    root $nginx_dir/root;
  }
}
CONF
"$nginx_bin" -p "$nginx_dir" -c "$nginx_dir/nginx.conf" &
pids+=($!)
wait_http "http://127.0.0.1:$nginx_port/api/v1/lookup/indicator"

cat > "$work/lookups.lua" <<LUA
local values = {}
for line in io.lines("$PWD/$load/lookups.txt") do values[#values + 1] = line end
local i = math.random(#values)
request = function()
  i = i % #values + 1
  return wrk.format("GET", "/api/v1/lookup/indicator?value=" .. values[i])
end
LUA
# Prints "<requests/s> <p99 ms>" of a wrk run.
bench() {
  wrk -t2 -c64 -d3s -s "$work/lookups.lua" "$1" >/dev/null   # warm-up
  wrk -t2 -c64 -d15s --latency -s "$work/lookups.lua" "$1" > "$work/wrk.out"
  python3 - "$work/wrk.out" <<'PY'
import re, sys
t = open(sys.argv[1]).read()
rps = float(re.search(r"Requests/sec:\s+([\d.]+)", t).group(1))
m = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", t)
p99 = float(m.group(1)) * {"us": 0.001, "ms": 1, "s": 1000}[m.group(2)]
errors = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
if errors:
    sys.exit(f"{errors.group(1)} error responses")
print(f"{rps:.0f} {p99:.2f}")
PY
}
read -r hub_rps hub_p99 < <(bench "http://127.0.0.1:$port")
read -r ngx_rps ngx_p99 < <(bench "http://127.0.0.1:$nginx_port")
echo "lookup/indicator ($n TLP:CLEAR indicators): khien $hub_rps req/s, p99 $hub_p99 ms | nginx static file $ngx_rps req/s, p99 $ngx_p99 ms | ratio $(ratio "$hub_rps" "$ngx_rps")× of nginx"
cleanup; pids=()

# --- Ingest with attribution ---------------------------------------------------------
# A fresh hub with an operator, its directory and RADIUS sessions; prints the
# two upload figures when asked to.
ingest_hub() { # DATA-DIR APPLY-INTERVAL SHOW-UPLOADS
  data=$1
  rm -rf "$data"
  mkdir -p "$data"
  port=$(free_port)
  cat > "$data/hub.toml" <<TOML
listen = "127.0.0.1:$port"
data_dir = "$PWD/$data"
[cases]
resolve_after = "1d"
job_interval = "1h"
apply_interval = "$2"
TOML
  k() { "$khien" --lang en --json "$@" --config "$data/hub.toml" 2>/dev/null; }
  k admin org create --slug isp --name "Bench ISP" --role operator >/dev/null
  admin=$(k admin api-key create --org isp --name isp-admin --scope admin | python3 -c "import json,sys; print(json.load(sys.stdin)['secret'])")
  sensor=$(k admin api-key create --org isp --name bench-sensor --scope hits:write | python3 -c "import json,sys; print(json.load(sys.stdin)['secret'])")
  KHIEN_LOG=warn "$khien" serve --config "$data/hub.toml" >/dev/null 2>"$data/hub.log" &
  pids+=($!)
  wait_http "http://127.0.0.1:$port/healthz"
  local dir_s att_s
  dir_s=$(post /api/v1/subscribers text/csv "$load/subscribers.csv")
  att_s=$(post "/api/v1/attribution?format=radius-csv" text/plain "$load/radius.csv")
  if [ "$3" = show ]; then
    echo "subscriber directory: $subs subscribers (contacts encrypted) in $dir_s s ($(rate "$subs" "$dir_s")/s)"
    echo "attribution upload: $subs RADIUS sessions in $att_s s ($(rate "$subs" "$att_s")/s)"
  fi
}
post() { # PATH CONTENT-TYPE FILE → seconds
  curl -s -o "$work/post.out" -w '%{http_code} %{time_total}\n' -H "Authorization: Bearer $admin" \
    -H "Content-Type: $2" --data-binary "@$3" "http://127.0.0.1:$port$1" > "$work/post.status"
  read -r code secs < "$work/post.status"
  [ "$code" = 200 ] || { echo "POST $1: HTTP $code: $(head -c 300 "$work/post.out")" >&2; exit 1; }
  echo "$secs"
}
pending() { sqlite3 "$data/khien.db" "SELECT COUNT(*) FROM hit_batches WHERE cases_applied = 0"; }

# 1. Ingest alone: the case job waits (it runs at most once an hour here).
ingest_hub "$work/ingest-data" 1h show
read -r batches sent ingest_s < <(python3 bench/send-batches.py "http://127.0.0.1:$port" "$sensor" "$load"/hits-*.ndjson)
rm -f "$work/base.db"
start=$(date +%s.%N)
sqlite3 "$work/base.db" "PRAGMA journal_mode=WAL;" >/dev/null
sqlite3 "$work/base.db" \
  "CREATE TABLE hits(bucket TEXT, sensor TEXT, client TEXT, kind TEXT, indicator TEXT, PRIMARY KEY (bucket, sensor, client, kind, indicator)) WITHOUT ROWID;" \
  ".mode csv" ".import $load/hits.csv hits"
base_s=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.3f}')" "$start")
echo "hit ingest, attribution on: $sent hits in $batches batches, $ingest_s s → $(rate "$sent" "$ingest_s") hits/s | sqlite3 .import of the same keys $base_s s | ratio $(ratio "$ingest_s" "$base_s")×"
cleanup; pids=()

# 2. The case job over all of it: restart with the job free to run.
sed -i 's/^apply_interval = .*/apply_interval = "1s"/' "$data/hub.toml"
start=$(date +%s.%N)
KHIEN_LOG=warn "$khien" serve --config "$data/hub.toml" >/dev/null 2>"$data/hub2.log" &
pids+=($!)
until [ "$(pending)" = 0 ]; do sleep 0.1; done
job_s=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$start")
cases=$(sqlite3 "$data/khien.db" "SELECT COUNT(*) FROM cases")
echo "case job: $sent hits of $subs subscribers → $cases cases opened in $job_s s (hub start included)"
cleanup; pids=()

# 3. Both at once, as in service: ingest while the case job follows.
ingest_hub "$work/ingest-live" 1s quiet
read -r batches sent live_s < <(python3 bench/send-batches.py "http://127.0.0.1:$port" "$sensor" "$load"/hits-*.ndjson)
start=$(date +%s.%N)
until [ "$(pending)" = 0 ]; do sleep 0.1; done
lag_s=$(python3 -c "import sys,time; print(f'{time.time()-float(sys.argv[1]):.2f}')" "$start")
echo "ingest with the case job running: $sent hits in $live_s s → $(rate "$sent" "$live_s") hits/s; cases caught up $lag_s s after the last batch"
cleanup; pids=()

# 4. The resolution job over every case: restart with a short delay.
data=$work/ingest-data
sed -i 's/^resolve_after = .*/resolve_after = "1s"/' "$data/hub.toml"
KHIEN_LOG=info "$khien" serve --config "$data/hub.toml" >/dev/null 2>"$data/hub3.log" &
pids+=($!)
for _ in $(seq 1 600); do grep -q hub_cases_resolved "$data/hub3.log" && break; sleep 0.1; done
python3 - "$data/hub3.log" <<'PY'
import re, sys
line = next(l for l in open(sys.argv[1]) if "hub_cases_resolved" in l)
plain = re.sub(r"\x1b\[[0-9;]*m", "", line)
count = re.search(r"count=(\d+)", plain).group(1)
ms = int(re.search(r"millis=(\d+)", plain).group(1))
print(f"resolution job: {count} quiet cases resolved in one run, {ms / 1000:.2f} s")
PY
