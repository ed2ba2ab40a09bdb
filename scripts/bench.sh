#!/usr/bin/env bash
# Side-by-side benchmark of shardline-node and redis-server 7.0 on this
# machine, with identical redis-benchmark invocations.
#
#   scripts/bench.sh            # full run (1M requests per test), ~10 minutes
#   N=200000 scripts/bench.sh   # quicker
#   TESTS=lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,lrange_100,lrange_600 scripts/bench.sh
#   MEMORY=0 scripts/bench.sh   # skip the memory measurement
#   ROUNDS=5 scripts/bench.sh   # rounds per test (default 3)
#   PIPELINES=1 scripts/bench.sh  # only without pipelining (default "1 16")
#   NODE_ARGS="--busy-poll-us 0" scripts/bench.sh  # extra directives for shardline-node
#
# Each test runs ROUNDS times against each server, alternating, so that a
# burst of machine noise hits both (odd rounds start with redis-server,
# even rounds with shardline); the table shows the median of each
# server's rounds (requests/s and p99), the ratio of the medians, the
# median of the rounds' own ratios and the lowest and highest of those,
# and the median of the rounds' own p99 ratios (shardline / redis-server,
# below 1 is better). Also prints the memory figures for 1M keys (16-byte
# keys, 32-byte values).
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000000}
C=${C:-50}
TESTS=${TESTS:-set,get,incr,mset}
ROUNDS=${ROUNDS:-3}
PIPELINES=${PIPELINES:-1 16}
read -r -a NODE_ARGS <<<"${NODE_ARGS:-}"
cargo build --release -p shardline-node >/dev/null
NODE=target/release/shardline-node
command -v redis-server >/dev/null || { echo "redis-server not found: run the README's test command first" >&2; exit 1; }
tmp=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$tmp"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() { for _ in $(seq 100); do redis-cli -p "$1" ping >/dev/null 2>&1 && return; sleep 0.1; done; echo "server on $1 did not start" >&2; exit 1; }

start_redis() {
  local p; p=$(free_port); mkdir -p "$tmp/redis-$p"
  redis-server --port "$p" --save '' --appendonly no --dir "$tmp/redis-$p" --daemonize no >/dev/null 2>&1 &
  pids+=($!); wait_up "$p"; echo "$p $!"
}
start_node() {
  local p; p=$(free_port); mkdir -p "$tmp/node-$p"
  "$NODE" --port "$p" --dir "$tmp/node-$p" --loglevel warning ${NODE_ARGS[@]+"${NODE_ARGS[@]}"} >/dev/null 2>&1 &
  pids+=($!); wait_up "$p"; echo "$p $!"
}

# Runs redis-benchmark and prints "test rps p99" lines.
bench() {
  local port=$1; shift
  redis-benchmark -p "$port" -c "$C" -n "$N" -t "$TESTS" --csv "$@" 2>/dev/null |
    python3 -c '
import csv,sys
r=csv.reader(sys.stdin); next(r)
for row in r: print(row[0].split()[0], row[1], row[6])'
}

echo "# redis-benchmark -c $C -n $N, $ROUNDS rounds per test, medians  ($(nproc) cores, $(date -u +%F))${NODE_ARGS[*]:+, shardline-node ${NODE_ARGS[*]}}"
read -r rp _ < <(start_redis)
read -r np _ < <(start_node)
for P in $PIPELINES; do
  echo
  echo "## pipeline $P"
  echo "| test | redis-server rps | shardline rps | ratio | median round ratio | round ratios | redis p99 ms | shardline p99 ms | median round p99 ratio |"
  echo "|---|---|---|---|---|---|---|---|---|"
  for t in ${TESTS//,/ }; do
    rows=""
    for i in $(seq "$ROUNDS"); do
      # Pick the test's own row (LRANGE_* runs an LPUSH first). Odd
      # rounds run redis-server first, even rounds shardline first, so
      # that whichever goes second in a pair has no systematic edge.
      if [ $((i % 2)) = 1 ]; then
        read -r t1 r1 l1 < <(TESTS=$t bench "$rp" -P "$P" | awk -v t="${t^^}" '$1==t' | head -1)
        read -r _ r2 l2 < <(TESTS=$t bench "$np" -P "$P" | awk -v t="${t^^}" '$1==t' | head -1)
      else
        read -r _ r2 l2 < <(TESTS=$t bench "$np" -P "$P" | awk -v t="${t^^}" '$1==t' | head -1)
        read -r t1 r1 l1 < <(TESTS=$t bench "$rp" -P "$P" | awk -v t="${t^^}" '$1==t' | head -1)
      fi
      rows="$rows$r1 $l1 $r2 $l2
"
    done
    printf '%s' "$rows" | python3 -c '
import statistics, sys
name = sys.argv[1]
rows = [list(map(float, l.split())) for l in sys.stdin if l.strip()]
med = lambda i: statistics.median(r[i] for r in rows)
ratios = [r[2] / r[0] for r in rows]
p99_ratios = [r[3] / r[1] for r in rows if r[1] > 0]
p99_ratio = f"{statistics.median(p99_ratios):.2f}" if p99_ratios else "-"
print(f"| {name} | {med(0):.0f} | {med(2):.0f} | {med(2) / med(0):.2f}x | "
      f"{statistics.median(ratios):.2f}x | {min(ratios):.2f}x-{max(ratios):.2f}x | "
      f"{med(1):.3f} | {med(3):.3f} | {p99_ratio} |")' "$t1"
  done
done
redis-cli -p "$rp" shutdown nosave >/dev/null 2>&1 || true
redis-cli -p "$np" shutdown nosave >/dev/null 2>&1 || true

[ "${MEMORY:-1}" = 1 ] || exit 0
# Memory: 1M keys, 16-byte keys ("key:" + 12 digits), 32-byte values.
echo
echo "## memory, 1M keys (16-byte keys, 32-byte values)"
echo "| server | RSS before | RSS after | bytes/key |"
echo "|---|---|---|---|"
for kind in redis node; do
  if [ $kind = redis ]; then read -r port pid < <(start_redis); else read -r port pid < <(start_node); fi
  before=$(awk '/VmRSS/{print $2*1024}' /proc/$pid/status)
  python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
s = socket.create_connection(("127.0.0.1", port))
val = b"v" * 32
batch = []
def flush():
    s.sendall(b"".join(batch)); batch.clear()
    need = 5 * 1000
    got = 0
    while got < need:
        got += len(s.recv(65536))
for i in range(1_000_000):
    k = b"key:%012d" % i
    batch.append(b"*3\r\n$3\r\nSET\r\n$16\r\n" + k + b"\r\n$32\r\n" + val + b"\r\n")
    if len(batch) == 1000:
        flush()
PY
  sleep 1
  after=$(awk '/VmRSS/{print $2*1024}' /proc/$pid/status)
  keys=$(redis-cli -p "$port" dbsize)
  per=$(python3 -c "print(round(($after-$before)/$keys,1))")
  name=$([ $kind = redis ] && echo redis-server || echo shardline-node)
  echo "| $name | $before | $after | $per |"
  redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true
done
