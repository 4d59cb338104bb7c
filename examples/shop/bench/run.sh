#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md: django-cart 3.1.1 and the demo shop side by side under the
# same load script on this machine, then how the shop's cost grows.
#
#   examples/shop/bench/run.sh            # everything (about 10 minutes)
#   DURATION=5s RUNS=1 examples/shop/bench/run.sh   # quicker, noisier
#   SKIP_DJANGO=1 / SKIP_POSTGRES=1 / SKIP_GROWTH=1  # leave a part out
#
# Needs wrk (installed with apt-get if missing), python3, and ../shared/bench (load.sh and
# the django-cart reference app). Results: examples/shop/bench/results/*.txt, then
# report.py writes docs/BENCHMARKS.md's tables and docs/benchmarks.svg.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../../.." && pwd)
shared=${SHARED:-$root/../shared}
load="$shared/bench/load.sh"
results="$here/results"
mkdir -p "$results"
export DURATION=${DURATION:-10s} RUNS=${RUNS:-2} CONNS=${CONNS:-32} THREADS=${THREADS:-2}
port=3000

command -v wrk >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk; }
(cd "$root" && cargo build --release -p shop -p axum-cart-cli)
shop_bin="$root/target/release/shop"
cart_bin="$root/target/release/cart"

wait_up() { for _ in $(seq 1 150); do curl -fso /dev/null "$1" && return 0; sleep 0.2; done; echo "no answer from $1" >&2; return 1; }
stop() { kill "$1" 2>/dev/null || true; wait "$1" 2>/dev/null || true; }

machine() {
  echo "# machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -sr), $(date -u +%FT%TZ)"
  echo "# cpu: $(awk -F: '/model name/ {print $2; exit}' /proc/cpuinfo | sed 's/^ *//')"
}

# 1. django-cart 3.1.1 (2 gunicorn sync workers, SQLite WAL), as measured by its own bench.
if [ -z "${SKIP_DJANGO:-}" ]; then
  (cd "$shared/bench/django-ref" && ./run.sh setup >/dev/null)
  (cd "$shared/bench/django-ref" && RESET_DB=1 WORKERS=2 PORT=8001 exec ./run.sh >/tmp/djref-bench.log 2>&1) &
  dj=$!
  wait_up http://127.0.0.1:8001/
  { machine; SERVER_PID=$dj "$load" http://127.0.0.1:8001; } | tee "$results/django.txt"
  stop $dj
  pkill -f "gunicorn djref" 2>/dev/null || true
fi

# 2. The demo shop on SQLite, release build, fresh database.
run_shop() { # name, env...
  local name=$1; shift
  env "$@" PORT=$port "$shop_bin" >"/tmp/shop-bench-$name.log" 2>&1 &
  shop_pid=$!
  wait_up "http://127.0.0.1:$port/healthz"
}
db=$(mktemp -d)/shop.db
run_shop sqlite DATABASE_URL="sqlite://$db" MAX_QUANTITY=1000000000 QUANTITY_RULES=0 DISCOUNT_ATTEMPTS_PER_MINUTE=0
{ machine; SLASH= FLOOR=/healthz SERVER_PID=$shop_pid "$load" "http://127.0.0.1:$port"; } | tee "$results/shop-sqlite.txt"
# No lost adds: every unit in the database came from a successful request.
python3 "$here/report.py" lost-adds "$db" "$results/shop-sqlite.txt" | tee -a "$results/shop-sqlite.txt"
stop $shop_pid

# 3. The demo shop on PostgreSQL (the production backend) as several servers would run it:
#    sessions in the database, no in-process caches.
if [ -z "${SKIP_POSTGRES:-}" ] && pg_isready -h 127.0.0.1 -p 5432 >/dev/null 2>&1; then
  schema="bench_$$"
  psql -h 127.0.0.1 -U postgres -d test -qc "CREATE SCHEMA $schema"
  run_shop postgres DATABASE_URL="postgres://postgres@127.0.0.1:5432/test?options=-c%20search_path%3D$schema" MAX_QUANTITY=1000000000 QUANTITY_RULES=0 DISCOUNT_ATTEMPTS_PER_MINUTE=0 SESSION_CACHE=0
  { machine; SLASH= FLOOR=/healthz SERVER_PID=$shop_pid "$load" "http://127.0.0.1:$port"; } | tee "$results/shop-postgres.txt"
  stop $shop_pid
  psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA $schema CASCADE"
fi

# 4. How cost grows: the cart page at 1, 10, 100 and 500 lines; add with 1 thousand and
#    1 million carts in the database; clean of 1 million abandoned carts under load.
if [ -z "${SKIP_GROWTH:-}" ]; then
  db=$(mktemp -d)/shop.db
  run_shop growth DATABASE_URL="sqlite://$db" MAX_QUANTITY=1000000000 QUANTITY_RULES=0 DISCOUNT_ATTEMPTS_PER_MINUTE=0 SEED_PER_KIND=200
  out="$results/growth.txt"; machine >"$out"
  jar=$(mktemp)
  for lines in 1 10 100 500; do
    rm -f "$jar"
    for i in $(seq 1 "$lines"); do
      kind=$(( (i - 1) % 3 )); id=$(( (i - 1) / 3 + 1 ))
      k=(book coffee course)
      curl -s -o /dev/null -b "$jar" -c "$jar" -X POST "http://127.0.0.1:$port/cart/add/${k[$kind]}/$id"
    done
    cookie=$(awk -F'\t' '{ sub(/^#HttpOnly_/, "") } /^#/ || NF < 7 { next } { printf "%s=%s", $6, $7 }' "$jar")
    got=$(curl -s -H "Cookie: $cookie" "http://127.0.0.1:$port/cart" | grep -c '<li' || true)
    echo "GROWTH page lines=$lines li=$got $(wrk -t2 -c32 -d"$DURATION" --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/cart" | python3 "$here/report.py" wrk)" | tee -a "$out"
  done
  add_load() { # label
    rm -f "$jar"
    curl -s -o /dev/null -b "$jar" -c "$jar" -X POST "http://127.0.0.1:$port/cart/add/book/1"
    cookie=$(awk -F'\t' '{ sub(/^#HttpOnly_/, "") } /^#/ || NF < 7 { next } { printf "%s=%s", $6, $7 }' "$jar")
    echo "GROWTH add carts=$1 $(wrk -t2 -c32 -d"$DURATION" --latency -s "$here/post.lua" -H "Cookie: $cookie" "http://127.0.0.1:$port/cart/add/book/2" | python3 "$here/report.py" wrk)" | tee -a "$out"
  }
  python3 "$here/report.py" fill "$db" 1000
  add_load 1000
  python3 "$here/report.py" fill "$db" 1000000
  add_load 1000000
  # clean of 1 million abandoned carts while the cart page is under load.
  python3 "$here/report.py" age "$db"
  wrk -t2 -c16 -d60s --latency -H "Cookie: $cookie" "http://127.0.0.1:$port/cart" >/tmp/clean-wrk.txt &
  wrk_pid=$!
  sleep 2
  start=$(date +%s.%N)
  DATABASE_URL="sqlite://$db" "$cart_bin" clean --days 90 --batch 5000 | tee -a "$out"
  end=$(date +%s.%N)
  kill -INT $wrk_pid 2>/dev/null || true; wait $wrk_pid 2>/dev/null || true
  echo "GROWTH clean carts=1000000 seconds=$(python3 -c "print(round($end-$start,1))") during: $(python3 "$here/report.py" wrk </tmp/clean-wrk.txt)" | tee -a "$out"
  stop $shop_pid
fi

python3 "$here/report.py" report "$results" "$root/docs"
echo "bench: wrote docs/BENCHMARKS.md tables and docs/benchmarks.svg"
