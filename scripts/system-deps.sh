#!/usr/bin/env bash
# What `make up` and `make test` need from the system, installed with apt-get when missing and run
# as root; otherwise one message listing what to install. Node.js and npm are never installed here.
#
#   scripts/system-deps.sh up     node >= 20, npm (nginx and supervisor: `forkyard up` installs them
#                                 itself, only when the stack runs natively rather than in Docker)
#   scripts/system-deps.sh test   also nginx, supervisor, wrk, chromium (the browser test) and
#                                 git (the fresh-clone tests); Docker is test/container/run.sh's
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
[ "$want" = up ] && exit 0

# command -> Debian package
declare -A pkg=([nginx]=nginx [supervisord]=supervisor [wrk]=wrk [chromium]=chromium [git]=git)
missing=()
for cmd in nginx supervisord wrk chromium git; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${pkg[$cmd]}")
done
# The browser test reaches its local server over TLS-free loopback, but chromium wants CA certificates.
[ -f /etc/ssl/certs/ca-certificates.crt ] || missing+=(ca-certificates)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  say "the tests need: ${missing[*]}. Install them as root (Debian/Ubuntu: sudo apt-get install -y ${missing[*]}), then run make test again"
  exit 1
fi
say "installing ${missing[*]} with apt-get"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
