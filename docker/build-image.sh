#!/usr/bin/env bash
# Builds the image docker-compose runs, `xdr-mesh:dev`, without a registry: a Debian bookworm
# base made with debootstrap from this machine's own apt mirror (kept as the image
# `xdr-base:bookworm` and rebuilt only when missing), and on it the binaries built on this
# host by cargo (`docker/runtime.Dockerfile`, the runtime stage of the top-level Dockerfile).
#
#   docker/build-image.sh            the debug binaries (what the tests build anyway)
#   XDR_IMAGE_PROFILE=release docker/build-image.sh
#   XDR_IMAGE_SKIP_BUILD=1 ...       package the binaries there are, build nothing (the
#                                    tests: tests/run.sh built them, and a cargo run from
#                                    inside a test's environment would rebuild C crates)
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${XDR_IMAGE_PROFILE:-debug}
# One build at a time (tests running side by side each ask for the image).
mkdir -p target/docker
exec 9>target/docker/.build-lock
flock 9
base=xdr-base:bookworm
binaries=(xdr-collector xdr-enrichment xdr-threatintel xdr-playbook xdr-gateway xdrctl usergate-emulator)

if ! docker image inspect "$base" >/dev/null 2>&1; then
  if ! command -v debootstrap >/dev/null; then
    [ "$(id -u)" -eq 0 ] || { echo "docker/build-image.sh: please install debootstrap (needs root)" >&2; exit 1; }
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  # The machine's own Debian mirror: no host is written here.
  mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  if [ -z "$mirror" ]; then
    mirror=$(grep -hoE '^deb +\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2; exit}')
  fi
  rootfs=target/docker/rootfs
  rm -rf "$rootfs" && mkdir -p "$rootfs"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null
  tar -C "$rootfs" -c . | docker import - "$base" >/dev/null
  rm -rf "$rootfs"
fi

if [ -z "${XDR_IMAGE_SKIP_BUILD:-}" ]; then
  if [ "$profile" = release ]; then
    cargo build --release --workspace --bins
  else
    cargo build --workspace --bins
  fi
fi

context=target/docker/context
rm -rf "$context" && mkdir -p "$context/bin" "$context/feeds"
# The demo feed (the seeds' test indicators), as `xdrctl up` gives a fresh mesh.
cp services/threatintel/feeds/Demo.json "$context/feeds/"
for binary in "${binaries[@]}"; do
  [ -x "target/$profile/$binary" ] || { echo "docker/build-image.sh: target/$profile/$binary is not built" >&2; exit 1; }
  cp "target/$profile/$binary" "$context/bin/"
done
docker build -q -f docker/runtime.Dockerfile --build-arg BASE="$base" -t xdr-mesh:dev "$context" >/dev/null
# The image the tag left (half a gigabyte a build: every test run makes one).
docker image prune -f --filter label=org.xdr-mesh.image >/dev/null
echo "built xdr-mesh:dev ($profile binaries on $base)"
