#!/usr/bin/env bash
# Runs one fuzz target for SECONDS (default 600) with cargo-fuzz (libFuzzer, AddressSanitizer),
# installing cargo-fuzz under target/tools. New inputs go to fuzz/corpus/TARGET, failing ones to
# fuzz/artifacts/TARGET; copy a fixed failure to fuzz/regressions/TARGET so the test command
# replays it forever. Minimize a grown corpus with `fuzz/run.sh TARGET cmin`.
#   fuzz/run.sh cybertrace_session 600
set -euo pipefail
cd "$(dirname "$0")/.."
target=${1:?usage: fuzz/run.sh TARGET [SECONDS|cmin]  (targets: ls fuzz/fuzz_targets)}
what=${2:-600}
tools=$PWD/target/tools/cargo-fuzz
[ -x "$tools/bin/cargo-fuzz" ] || cargo install cargo-fuzz --locked --root "$tools"
# cargo-fuzz passes nightly flags (-Zsanitizer); the one stable toolchain here takes them so.
export RUSTC_BOOTSTRAP=1
# Its own target folder: sanitizer builds share nothing with the workspace's.
export CARGO_TARGET_DIR=$PWD/target/fuzz
mkdir -p "fuzz/corpus/$target"
if [ "$what" = cmin ]; then
  exec "$tools/bin/cargo-fuzz" cmin --fuzz-dir fuzz "$target" "fuzz/corpus/$target"
fi
exec "$tools/bin/cargo-fuzz" run --fuzz-dir fuzz "$target" "fuzz/corpus/$target" -- \
  -max_total_time="$what" -max_len=65536 -timeout=10 -rss_limit_mb=4096
