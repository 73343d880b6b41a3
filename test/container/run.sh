#!/usr/bin/env bash
# make test-container: the stack in its container, end to end, on a machine that may have no Docker
# at all. Installs what is missing (Debian's docker.io, docker-compose, debootstrap), starts a
# Docker engine when none answers (on its own socket, so that a native `make up` elsewhere on the
# machine is not switched to Docker meanwhile; stopped again at the end, by PID), builds a local
# stand-in for node:24-bookworm-slim when the image is missing (standin-base.sh: no image registry
# here), builds the real Dockerfile unchanged (and prints the image's size: total, base, added),
# then runs test/container/container.test.ts, which starts the stack from fresh clones of this
# repository's HEAD the way users do (`make up`; plain `docker compose up`). Prints the time of each
# phase.
#
# Variables: FORKYARD_CONTAINER_WORK (/var/tmp/forkyard-container: dockerd log, base image work),
# NODE (node), and those of standin-base.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
NODE=${NODE:-node}
WORK=${FORKYARD_CONTAINER_WORK:-/var/tmp/forkyard-container}
export FORKYARD_CONTAINER_WORK=$WORK DOCKER_BUILDKIT=0 COMPOSE_DOCKER_CLI_BUILD=0
mkdir -p "$WORK"
say() { echo "test-container: $*"; }
# One run at a time on a machine: a second run would use the engine the first one stops.
exec 9> "$WORK/.lock"
if ! flock -w 900 9; then say "another make test-container held $WORK/.lock for 15 min"; exit 1; fi
t_all=$(date +%s)
phase() { echo "test-container: [timing] $1: $(( $(date +%s) - $2 )) s" | tee -a "$WORK/timings.txt"; }
: > "$WORK/timings.txt"

# --- tools ---------------------------------------------------------------------------------------
t=$(date +%s)
# Debian's docker.io, docker-compose, debootstrap and git, as root (scripts/system-deps.sh).
scripts/system-deps.sh docker
phase tools "$t"

# --- engine --------------------------------------------------------------------------------------
t=$(date +%s)
DOCKERD_PID=
stop_dockerd() {
  if [ -n "$DOCKERD_PID" ] && kill -0 "$DOCKERD_PID" 2>/dev/null; then
    say "stopping the dockerd this run started (pid $DOCKERD_PID)"
    kill -TERM "$DOCKERD_PID" 2>/dev/null || true
    for _ in $(seq 1 60); do kill -0 "$DOCKERD_PID" 2>/dev/null || break; sleep 0.5; done
    if kill -0 "$DOCKERD_PID" 2>/dev/null; then kill -KILL "$DOCKERD_PID" 2>/dev/null || true; fi
  fi
}
trap stop_dockerd EXIT
engine() { timeout 5 docker info --format '{{.ServerVersion}}' >/dev/null 2>&1; }
if engine; then
  say "using the Docker engine that answers at ${DOCKER_HOST:-the default socket}"
else
  export DOCKER_HOST=unix:///run/forkyard-test-docker.sock
  if engine; then
    say "using the engine left at $DOCKER_HOST by an earlier run"
  else
    say "starting dockerd at $DOCKER_HOST (log: $WORK/dockerd.log)"
    dockerd --host "$DOCKER_HOST" --pidfile /run/forkyard-test-docker.pid > "$WORK/dockerd.log" 2>&1 9>&- &
    DOCKERD_PID=$!
    for _ in $(seq 1 120); do
      engine && break
      kill -0 "$DOCKERD_PID" 2>/dev/null || { say "dockerd exited:"; tail -n 40 "$WORK/dockerd.log"; exit 1; }
      sleep 0.5
    done
    engine || { say "dockerd did not answer within 60 s:"; tail -n 40 "$WORK/dockerd.log"; exit 1; }
  fi
fi
say "engine $(docker info --format '{{.ServerVersion}} ({{.Driver}})'); compose: $(docker compose version 2>/dev/null || docker-compose version --short)"
phase engine "$t"

# --- base image (a local stand-in when node:24-bookworm-slim cannot be pulled) --------------------
t=$(date +%s)
test/container/standin-base.sh
phase "base image" "$t"

# --- the real image, as `make up` builds it ---------------------------------------------------------
t=$(date +%s)
docker build -t forkyard:local . > "$WORK/build.log" 2>&1 || { tail -n 60 "$WORK/build.log"; say "docker build failed (full log: $WORK/build.log)"; exit 1; }
mb() { echo "$(( $1 / 1000000 )) MB"; }
size=$(docker image inspect -f '{{.Size}}' forkyard:local)
base=$(docker image inspect -f '{{.Size}}' node:24-bookworm-slim)
say "image forkyard:local $(docker image inspect -f '{{.Id}}' forkyard:local): $(mb "$size") ($size bytes): base node:24-bookworm-slim $(mb "$base"), added $(mb $(( size - base )))"
docker history --no-trunc --format '{{.Size}}\t{{.CreatedBy}}' forkyard:local | awk -F'\t' '$1 != "0B" { printf "test-container:   %8s  %s\n", $1, substr($2, 1, 90) }'
phase "image build" "$t"

# --- the end-to-end test -------------------------------------------------------------------------
t=$(date +%s)
status=0
"$NODE" --import tsx --test --test-concurrency=1 test/container/container.test.ts || status=$?
phase "container test" "$t"
phase total "$t_all"
exit "$status"
