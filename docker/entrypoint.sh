#!/bin/sh
# The container's entrypoint (Dockerfile ENTRYPOINT), the way the docker-library images (redis,
# postgres) do it. Two passes over this one script:
#
# 1. As root, the default (docker-compose.yml and a plain `docker run` start the container as
#    root, with only the capabilities CHOWN, SETUID and SETGID): /app/logs and /app/data go to the
#    target user FORKYARD_UID:FORKYARD_GID (default 10001:10001, the image's `forkyard`) when that
#    user cannot write them (Docker creates a missing ./logs or ./data as root; a native `make up`
#    as root leaves root's files there). Then this script runs again as the target user through
#    setpriv, which leaves no capability behind.
# 2. As the target user, or straight away when the container was started as a non-root user
#    (compose `user:`, set by a non-root `make up`, so that ./logs stays the caller's): /app/.env
#    readable, /app/logs and /app/data writable (each failure is one line saying what to run on the
#    host), every setting valid (`forkyard check`: on a bad value its reason, naming the key and the
#    value, is the container's output, so `docker compose logs` and `make up` show it first), the
#    run directory created, then the command: supervisord -n as PID 1.
#
# Exit 2: bad settings, or a file or directory the container user cannot use.
set -eu

say() { echo "forkyard-entrypoint: $*" >&2; }
uid=${FORKYARD_UID:-10001}
gid=${FORKYARD_GID:-10001}

# --- pass 1: root -----------------------------------------------------------------------------
if [ "$(id -u)" = 0 ]; then
  case "$uid" in '' | *[!0-9]*) say "expected FORKYARD_UID to be a numeric user id, got \"$uid\""; exit 2 ;; esac
  case "$gid" in '' | *[!0-9]*) say "expected FORKYARD_GID to be a numeric group id, got \"$gid\""; exit 2 ;; esac
  if [ "$uid" = 0 ] || [ "$gid" = 0 ]; then
    say "expected FORKYARD_UID and FORKYARD_GID to name a non-root user, got $uid:$gid: the stack never runs as root"
    exit 2
  fi
  # The image's user has a passwd entry (its groups from /etc/group); any other id gets no
  # supplementary group.
  if getent passwd "$uid" >/dev/null 2>&1; then groups=--init-groups; else groups=--clear-groups; fi
  as_target() { setpriv --reuid="$uid" --regid="$gid" "$groups" -- "$@"; }
  for dir in /app/logs /app/data; do
    [ -d "$dir" ] || continue
    # Anything in the tree the target user cannot write (or a directory it cannot read).
    blocked=$(as_target find "$dir" ! -writable -print -quit 2>&1 || echo "$dir")
    [ -n "$blocked" ] || continue
    say "$dir (owner $(stat -c %u:%g "$dir")) is not writable by $uid:$gid: chown -R $uid:$gid $dir"
    find "$dir" -xdev \( ! -user "$uid" -o ! -group "$gid" \) -exec chown -h "$uid:$gid" {} +
  done
  exec setpriv --reuid="$uid" --regid="$gid" "$groups" -- "$0" "$@"
fi

# --- pass 2: the target user ------------------------------------------------------------------
me="$(id -u):$(id -g)"
if [ -d /app/.env ]; then
  say "/app/.env is a directory: the host had no .env when the container was created, so Docker made one. On the host: rmdir .env && cp .env.example .env (or run make up, which creates it)"
  exit 2
fi
if [ -e /app/.env ] && [ ! -r /app/.env ]; then
  say "/app/.env (your .env, bind-mounted) is not readable by the container's user $me (owner $(stat -c %u:%g /app/.env), mode $(stat -c %a /app/.env)). On the host: chgrp $(id -g) .env && chmod g+r .env (make up does this when run as root)"
  exit 2
fi
for dir in /app/logs /app/data; do
  if [ -d "$dir" ] && { [ ! -w "$dir" ] || [ ! -x "$dir" ]; }; then
    say "$dir (owner $(stat -c %u:%g "$dir"), mode $(stat -c %a "$dir")) is not writable by the container's user $me. On the host: chown -R $me ./${dir#/app/}"
    exit 2
  fi
done

case "${1:-}" in
  supervisord | */supervisord)
    # Every setting, as each program will read it: a bad value stops here with its reason.
    node /app/dist/bin/forkyard.js check || exit $?
    ;;
esac
mkdir -p -m 0700 "${FORKYARD_RUN_DIR:-/tmp/forkyard-run}"
exec "$@"
