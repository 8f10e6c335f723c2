#!/usr/bin/env bash
# Intel-core benchmark: import and RPZ export of N generated indicators, each
# figure next to a baseline measured in the same run on the same rows.
#
#   bench/intel.sh [N]        # default 1,000,000
#
# Baselines: `sqlite3 .import` of the same lines into a table with a unique
# key (SQLite), `\copy` into the same (PostgreSQL), and `sqlite3` dumping the
# same rows to a file (export). Peak memory comes from /usr/bin/time.
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
work=target/bench/intel
mkdir -p "$work"
cargo build --release --locked -q
khien=target/release/khien

secs() { python3 -c "import sys; print(f'{float(sys.argv[1]):.2f}')" "$1"; }
# Runs a command, printing "<seconds> <peak KiB>" of it to fd 3.
timed() { /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null; cat "$work/time"; }
ratio() { python3 -c "import sys; print(f'{float(sys.argv[1])/float(sys.argv[2]):.2f}')" "$1" "$2"; }
rate() { python3 -c "import sys; print(f'{int(float(sys.argv[1])/max(float(sys.argv[2]),1e-9)):,}')" "$1" "$2"; }

list=$work/indicators-$n.txt
[ -s "$list" ] || python3 bench/gen-indicators.py "$n" > "$list"
echo "input: $n generated indicators ($(du -h "$list" | cut -f1)), $(nproc) cores"

# --- SQLite --------------------------------------------------------------------
rm -f "$work"/base.db* "$work"/khien.db* "$work"/khien-wl.db*
read -r base_s base_kb < <(timed sqlite3 "$work/base.db" \
  "PRAGMA journal_mode=WAL;" "CREATE TABLE t(value TEXT PRIMARY KEY);" ".mode line" ".import $list t")
read -r k_s k_kb < <(timed "$khien" --lang en intel import --no-default-warninglists --source bench "$list" --database "$work/khien.db")
echo "import → SQLite:     khien $(secs "$k_s") s ($(rate "$n" "$k_s")/s, peak $((k_kb/1024)) MiB) | sqlite3 .import $(secs "$base_s") s | ratio $(ratio "$k_s" "$base_s")×"
read -r kw_s kw_kb < <(timed "$khien" --lang en intel import --source bench "$list" --database "$work/khien-wl.db")
echo "  with default warninglists: $(secs "$kw_s") s ($(rate "$n" "$kw_s")/s)"
read -r r_s r_kb < <(timed "$khien" --lang en intel import --no-default-warninglists --source bench "$list" --database "$work/khien.db")
echo "re-import (all updated): $(secs "$r_s") s ($(rate "$n" "$r_s")/s)"

# --- PostgreSQL ------------------------------------------------------------------
if [ -x "$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)/initdb" ]; then
  pg_dir=$(mktemp -d /tmp/khien-bench-pg.XXXXXX)
  # Settings a hub that takes bulk imports would run with: a buffer pool of
  # 1 GiB and checkpoints far apart.
  url=$(KHIEN_PG_OPTIONS="-c shared_buffers=1GB -c max_wal_size=8GB -c checkpoint_timeout=30min -c wal_level=minimal -c max_wal_senders=0" \
    scripts/postgres-server start "$pg_dir" 55499)
  trap 'scripts/postgres-server stop "$pg_dir"; rm -rf "$pg_dir"' EXIT
  psql -q "$url" -c "CREATE TABLE t(value TEXT PRIMARY KEY)"
  read -r pb_s _ < <(timed psql -q "$url" -c "\\copy t FROM '$PWD/$list'")
  read -r pk_s pk_kb < <(timed "$khien" --lang en intel import --no-default-warninglists --source bench "$list" --database "$url")
  echo "import → PostgreSQL: khien $(secs "$pk_s") s ($(rate "$n" "$pk_s")/s, peak $((pk_kb/1024)) MiB) | psql \\copy $(secs "$pb_s") s | ratio $(ratio "$pk_s" "$pb_s")×"
fi

# --- RPZ export --------------------------------------------------------------------
read -r e_s e_kb < <(timed "$khien" --lang en intel export --format rpz --out "$work/khien.rpz" --database "$work/khien.db")
read -r eb_s _ < <(timed sh -c "sqlite3 '$work/base.db' 'SELECT value FROM t' > '$work/base-dump.txt'")
echo "RPZ export:          khien $(secs "$e_s") s (peak $((e_kb/1024)) MiB, $(wc -l < "$work/khien.rpz") lines) | sqlite3 dump of the same rows $(secs "$eb_s") s | ratio $(ratio "$e_s" "$eb_s")×"
if command -v unbound-checkconf >/dev/null; then
  conf=$work/unbound.conf
  cat > "$conf" <<CONF
server:
  interface: 127.0.0.1
  port: 55399
  username: ""
  chroot: ""
  directory: "$PWD/$work"
  pidfile: "$PWD/$work/unbound.pid"
  use-syslog: no
  logfile: "$PWD/$work/unbound.log"
  do-daemonize: no
  module-config: "respip iterator"
rpz:
  name: rpz.khien.
  zonefile: "$PWD/$work/khien.rpz"
CONF
  unbound-checkconf "$conf" >/dev/null
  start=$(date +%s.%N)
  unbound -c "$conf" & ub=$!
  until dig @127.0.0.1 -p 55399 +time=1 +tries=1 version.bind chaos txt >/dev/null 2>&1; do
    kill -0 $ub 2>/dev/null || { echo "unbound failed to load the zone:"; tail -5 "$work/unbound.log"; exit 1; }
    sleep 0.2
  done
  end=$(date +%s.%N)
  kill $ub; wait $ub 2>/dev/null || true
  echo "Unbound loads the zone and answers in $(python3 -c "print(f'{$end-$start:.2f}')") s"
fi
