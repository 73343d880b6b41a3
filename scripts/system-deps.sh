#!/usr/bin/env bash
# What `make up` and `make test` need from the system, installed with apt-get when missing and run
# as root; otherwise one message listing what to install. Node.js and npm are never installed here.
#
#   scripts/system-deps.sh up       node >= 20, npm (nginx and supervisor: `forkyard up` installs
#                                   them itself, only when the stack runs natively, not in Docker)
#   scripts/system-deps.sh test     also nginx, supervisor, wrk, chromium (the browser test), git
#                                   (the fresh-clone tests), redis-server and iproute2 (the Redis
#                                   engine and its three-host test)
#   scripts/system-deps.sh docker   Docker's engine and compose, debootstrap (the stand-in base
#                                   image) and git, for test/container/run.sh
set -euo pipefail
want=${1:-up}
say() { echo "system-deps: $*" >&2; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  say "expected Node.js >= 20 with npm on PATH, found none: install Node.js 20 or later (https://nodejs.org, or Debian's nodejs and npm packages)"
  exit 1
fi
major=$(node -p 'process.versions.node.split(".")[0]')
if [ "$major" -lt 20 ]; then
  say "expected Node.js >= 20, got $(node --version): install Node.js 20 or later"
  exit 1
fi

missing=()
need() { command -v "$1" >/dev/null 2>&1 || missing+=("$2"); }
extra=()
case "$want" in
  up) exit 0 ;;
  test)
    need nginx nginx; need supervisord supervisor; need wrk wrk; need chromium chromium; need git git
    # The Redis engine's tests (issue 14): a real redis-server, and network namespaces (iproute2).
    need redis-server redis-server; need ip iproute2
    # forkyard startup's unit is checked with systemd-analyze verify.
    need systemd-analyze systemd
    # chromium wants CA certificates even for the loopback pages of the browser test.
    [ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
    ;;
  docker)
    need dockerd docker.io; need docker docker.io; need debootstrap debootstrap; need git git
    if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null 2>&1; then missing+=(docker-compose); fi
    extra=(iptables ca-certificates)
    ;;
  *) say "expected up, test or docker, got ${want}"; exit 2 ;;
esac
[ ${#missing[@]} -eq 0 ] && exit 0
mapfile -t missing < <(printf '%s\n' "${missing[@]}" | sort -u)

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "${want} needs: ${missing[*]}. Install them as root (Debian/Ubuntu: sudo apt-get install -y ${missing[*]}), then run it again"
  exit 1
fi
say "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" "${extra[@]}" >/dev/null
