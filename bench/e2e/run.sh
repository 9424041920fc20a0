#!/usr/bin/env bash
# End-to-end figures of the whole mesh, in docker-compose and on the host (`xdrctl up`), in one
# run on one generated feed: events/s through the gateway's /input (enriched against the feed,
# stored, matches raised as alerts) and the time from /input to searchable under that load.
#
#   bench/e2e/run.sh [SECONDS] [INDICATORS] [RULE_RPS]
#
# RULE_RPS (default 1000000) lifts the seed's rule's lookups-per-second limit (KUMA's default,
# 1,000, would make the figure the rule's own); 1000 shows the mesh under the seed's setting.
#
# XDR_BENCH_TRACED=1 runs both meshes exporting every span over OTLP (to `xdrctl traces
# receive` on the host, to the `tracing` profile's receiver in compose): the cost of tracing.
#
# Release binaries (built here); the compose image is rebuilt from them. Ports: the host mesh
# on 127.0.0.96, the compose one on 127.0.0.97. Both are stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/../.."

seconds=${1:-20}
indicators=${2:-1000000}
rule_rps=${3:-1000000}
work=target/bench/e2e
host_ip=127.0.0.96
compose_ip=127.0.0.97
project=xdrbench
traced=${XDR_BENCH_TRACED:-}

cargo build --release --workspace --bins
bench=target/release/xdr-bench
feeds=$("$bench" feed --indicators "$indicators" --dir "$work" | tail -1)
cp services/threatintel/feeds/Demo.json "$feeds/"

# The mesh on the host.
home=$work/home
rm -rf "$home" && mkdir -p "$home/data/threatintel"
cp -r "$feeds" "$home/data/threatintel/feeds"
if [ -n "$traced" ]; then
  rm -f "$work/spans.jsonl"
  target/release/xdrctl traces receive --listen "$host_ip:4317" --output "$work/spans.jsonl" \
    > "$work/traces.log" 2>&1 &
  receiver=$!
  trap 'kill "$receiver" 2>/dev/null || true' EXIT
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://$host_ip:4317
fi
target/release/xdrctl up --home "$home" --bind "$host_ip" --bin-dir target/release \
  --ready-timeout 300s > "$work/up.log" 2>&1 &
up=$!
stop_host() { kill -INT "$up" 2>/dev/null || true; wait "$up" 2>/dev/null || true; }
for _ in $(seq 600); do
  grep -q "xdr mesh is up" "$work/up.log" && break
  kill -0 "$up" 2>/dev/null || { cat "$work/up.log"; exit 1; }
  sleep 0.5
done
"$bench" e2e --label host --gateway "$host_ip:8080" --indicators "$indicators" \
  --duration "${seconds}s" --rule-rps "$rule_rps" --token "$(cat "$home/data/gateway/first-admin-token")" || { stop_host; exit 1; }
stop_host
if [ -n "$traced" ]; then
  echo "host: $(wc -l < "$work/spans.jsonl") spans received"
  kill "$receiver" 2>/dev/null || true
  unset OTEL_EXPORTER_OTLP_ENDPOINT
fi

# The same in docker-compose.
XDR_IMAGE_PROFILE=release XDR_IMAGE_SKIP_BUILD=1 docker/build-image.sh
export XDR_COMPOSE_DIR=$PWD/$work/compose XDR_COMPOSE_BIND=$compose_ip XDR_BENCH_FEEDS=$PWD/$feeds
profile=()
if [ -n "$traced" ]; then
  profile=(--profile tracing)
  export OTEL_EXPORTER_OTLP_ENDPOINT=http://traces:4317
fi
compose() { docker-compose -f docker-compose.yml -f bench/e2e/feeds.yml -p "$project" "${profile[@]}" "$@"; }
compose down -v --timeout 2 >/dev/null 2>&1 || true
compose up -d
trap 'compose down -v --timeout 5 >/dev/null 2>&1' EXIT
[ "$(timeout 600 docker wait "$(compose ps -q quickstart)")" = 0 ] || { compose logs --tail 20; exit 1; }
"$bench" e2e --label compose --gateway "$compose_ip:8080" --indicators "$indicators" \
  --duration "${seconds}s" --rule-rps "$rule_rps" --token "$(compose exec -T gateway cat /var/lib/xdr/first-admin-token)"
if [ -n "$traced" ]; then
  echo "compose: $(compose exec -T traces wc -l /var/lib/xdr/spans.jsonl | cut -d' ' -f1) spans received"
fi
