#!/usr/bin/env bash
# The gateway's HTTP input under wrk (a C load generator that takes little of the two cores
# the mesh runs on): one-event posts over many keep-alive connections, then 1,000-event NDJSON
# posts, to a collector with no rule, on a fresh `xdrctl up` of the release build.
#   bench/wrk/input.sh [SECONDS] [CONNECTIONS]
# Installs wrk from Debian's packages when missing. Figures vary by tens of percent from run
# to run on a shared machine: compare runs made one after the other.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-5}
connections=${2:-256}
host=127.0.0.95

command -v wrk >/dev/null || {
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
}
cargo build --release --bins -q
home=$(mktemp -d)
target/release/xdrctl up --home "$home" --bind "$host" --bin-dir target/release >"$home/up.log" 2>&1 &
up=$!
trap 'kill -INT $up 2>/dev/null; wait $up 2>/dev/null; rm -rf "$home"' EXIT
for _ in $(seq 1 120); do
  grep -q "Ctrl-C stops the mesh" "$home/up.log" && break
  kill -0 $up 2>/dev/null || { cat "$home/up.log"; exit 1; }
  sleep 1
done
target/release/xdrctl collector create plain --http --home "$home" --host "$host" >/dev/null

one="$home/one.lua"
cat >"$one" <<'LUA'
wrk.method = "POST"
wrk.body = '{"RequestUrl":"http://bench.example/a","SourceAddress":"10.1.2.3"}'
wrk.headers["Content-Type"] = "application/json"
LUA
thousand="$home/thousand.lua"
{
  echo 'wrk.method = "POST"'
  echo 'wrk.headers["Content-Type"] = "application/x-ndjson"'
  printf 'wrk.body = "'
  for i in $(seq 1 1000); do printf '{\\"RequestUrl\\":\\"http://bench.example/%d\\"}\\n' "$i"; done
  echo '"'
} >"$thousand"

url="http://$host:8080/collectors/plain/input"
echo "one event per request, $connections connections, ${seconds}s:"
wrk -t1 -c"$connections" -d"${seconds}s" -s "$one" "$url" | grep -E "Latency|Requests/sec|Non-2xx"
echo "1,000 events per request, 8 connections, ${seconds}s (events/s = requests/s × 1,000):"
wrk -t1 -c8 -d"${seconds}s" -s "$thousand" "$url" | grep -E "Latency|Requests/sec|Non-2xx"
