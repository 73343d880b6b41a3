#!/bin/sh
# The container's health check (Dockerfile HEALTHCHECK, docker-compose.yml healthcheck): healthy
# when /readyz answers 200, i.e. every component is ready. Docker runs it as the container's
# configured user, root by default: it drops to the stack's user first, as the entrypoint does, so
# that nothing in the container but the entrypoint's first pass runs as root. Node's fetch: no curl
# in the image.
set -eu
if [ "$(id -u)" = 0 ]; then
  exec setpriv --reuid="${FORKYARD_UID:-10001}" --regid="${FORKYARD_GID:-10001}" --clear-groups -- "$0" "$@"
fi
exec node -e "fetch('http://127.0.0.1:8080/readyz', { signal: AbortSignal.timeout(4000) }).then((r) => process.exit(r.status === 200 ? 0 : 1), () => process.exit(1))"
