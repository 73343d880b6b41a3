# forkyard in one container: supervisord (PID 1, reaping every orphan) keeps nginx, the prefork
# server, the WebSocket push process and the ZeroMQ bridge alive, with the same supervisor/ and
# nginx/ files as a native `make up`. Built by `make up` through docker-compose.yml when a Docker
# engine answers; `docker build -t forkyard:local .` by hand. Legacy builder compatible (no BuildKit
# features), every RUN under `set -eux`.
#
# Variables fixed by this image (the container's layout; a value in .env does not change them):
#   FORKYARD_HOME=/app                                   the kit (dist/, nginx/, supervisor/, docker/)
#   FORKYARD_PROJECT_DIR=/app                            .env and data/: every program's working directory
#   FORKYARD_NODE=/usr/local/bin/node                    the node binary supervisord starts
#   FORKYARD_RUN_DIR=/tmp/forkyard-run                   sockets, pidfiles, FIFO (tmpfs, mode 0700)
#   FORKYARD_PIDFILE=/tmp/forkyard-run/server.pid
#   FORKYARD_LOG_DIR=/app/logs                           JSON log files (compose bind-mounts ./logs)
#   FORKYARD_LISTEN_HOST=0.0.0.0                         nginx inside; compose publishes the port on
#                                                        the host at ${FORKYARD_LISTEN_HOST:-127.0.0.1}
#                                                        from .env (the native default)
#   FORKYARD_PORT=8080                                   inside; compose maps ${FORKYARD_PORT:-8080} to it
#   FORKYARD_BIND=unix:/tmp/forkyard-run/server.sock     the server, behind nginx
#   FORKYARD_READY_CHECKS=workers,push,supervisor        /readyz covers every component
#   NODE_ENV=production
# Read by the entrypoint (docker/entrypoint.sh), from compose's `environment:`:
#   FORKYARD_UID=10001, FORKYARD_GID=10001               the user every process runs as; the
#                                                        container starts as root only to hand
#                                                        /app/logs and /app/data to it, then drops
# Every other variable comes from /app/.env (bind-mounted read-only by compose), which every
# forkyard program reads itself at start (working directory /app) and the server watches, so an
# edit reaches the running stack; the entrypoint validates it all (`forkyard check`) before
# supervisord starts. Defaults as in .env.example:
#   FORKYARD_APP=example/app.mjs          (relative to /app)
#   FORKYARD_WORKERS=0                    (0 = one per CPU the container's CPU quota allows)
#   FORKYARD_TIMEOUT=30s
#   FORKYARD_GRACEFUL_TIMEOUT=30s         (keep below supervisord's stopwaitsecs 40 and compose's 45s)
#   FORKYARD_REQUEST_TIMEOUT=0
#   FORKYARD_BOOT_TIMEOUT=30s
#   FORKYARD_MAX_REQUESTS=0
#   FORKYARD_MAX_REQUESTS_JITTER=0
#   FORKYARD_MAX_RSS=0
#   FORKYARD_KEEPALIVE_TIMEOUT=75s
#   FORKYARD_HEADERS_TIMEOUT=20s
#   FORKYARD_REQUEST_RECEIVE_TIMEOUT=120s
#   FORKYARD_MAX_HEADER_SIZE=16KiB
#   FORKYARD_SCHEDULING=none
#   FORKYARD_LOG_LEVEL=info
#   FORKYARD_ACCESS_LOG=auto
#   FORKYARD_TRUSTED_ADDRESSES=127.0.0.1,::1
#   FORKYARD_JOBS=true
#   FORKYARD_TASKS_DIR=./data/tasks       (under /app/data, the bind-mounted ./data: survives the container)
#   FORKYARD_TASKS_CONCURRENCY=4
#   FORKYARD_TASKS_KEEP_AGE=168h          (done and failed tasks kept this long, then pruned)
#   FORKYARD_TASKS_KEEP_COUNT=10000
#   FORKYARD_TASKS_LEASE=10s              (Redis engine: a dead host's task runs elsewhere after this)
#   FORKYARD_SINGLETON_LEASE=10s          (Redis engine: a dead host's singleton moves after this)
#   FORKYARD_OFFLOAD_THREADS=0
#   FORKYARD_APP_SCHEMA=
#   FORKYARD_LOG_MAX_SIZE=10MiB
#   FORKYARD_LOG_KEEP=5
#   FORKYARD_ACCESS_LOG_MAX_SIZE=64MiB
#   FORKYARD_ACCESS_LOG_KEEP=10
#   FORKYARD_BODY_LIMIT=1MiB
#   FORKYARD_NGINX_WORKERS=1
#   FORKYARD_STATIC_DIR=example/public
#   FORKYARD_METRICS_ALLOW=127.0.0.1,::1  (who may scrape /metrics; the host arrives from the bridge gateway)
#   FORKYARD_DOCKER=auto                  (read by `make up` on the host, not in the container)
#   FORKYARD_COMPOSE_FILES=docker-compose.yml (read by `make up` on the host)
#   FORKYARD_BRIDGE_DIR=                  (empty = $FORKYARD_RUN_DIR/bridge)
#   FORKYARD_BRIDGE_TCP=
#   FORKYARD_BRIDGE_HISTORY_COUNT=1000
#   FORKYARD_BRIDGE_HISTORY_AGE=1h
#   FORKYARD_BRIDGE_DATA_DIR=./data/bridge (under /app/data, the bind-mounted ./data: history survives the container)
#   FORKYARD_BRIDGE_FSYNC=false
#   FORKYARD_PUBLISH_QUEUE=10000
#   FORKYARD_PUBLISH_RESEND=2s
#   FORKYARD_PUSH_BIND=127.0.0.1:8001     (inside the container; nginx proxies /ws to it)
#   FORKYARD_PUSH_SECRET=
#   FORKYARD_PUSH_ORIGINS=
#   FORKYARD_PUSH_MAX_MESSAGE=64KiB
#   FORKYARD_PUSH_MAX_SUBSCRIPTIONS=100
#   FORKYARD_PUSH_MAX_BUFFER=1MiB
#   FORKYARD_PUSH_CONN_RATE=20
#   FORKYARD_PUSH_PING_INTERVAL=30s
#   FORKYARD_PUSH_HEARTBEAT_STALE=5s
#   FORKYARD_PUSH_MAX_LAG=5s
#   FORKYARD_ENGINE=embedded              (docker-compose.redis.yml sets redis://redis:6379/0)
#   FORKYARD_ENGINE_PREFIX=forkyard:

# --- builder: every dependency, then the TypeScript build -------------------------------------
FROM node:24-bookworm-slim AS builder
WORKDIR /src
COPY package.json package-lock.json ./
# --ignore-scripts: the package's own `prepare` (tsc) needs the sources, copied after this layer;
# zeromq ships its prebuilt binaries inside the package.
RUN set -eux; \
    npm ci --ignore-scripts --no-audit --no-fund; \
    rm -rf /root/.npm
COPY tsconfig.json ./
COPY server ./server
# Source maps and declarations serve the package's users and debuggers, not the running stack.
RUN set -eux; \
    npm run build; \
    test -f dist/bin/forkyard.js; \
    find dist \( -name '*.map' -o -name '*.d.ts' \) -delete

# --- runtime: production dependencies, nginx and supervisord, a non-root user -------------------
FROM node:24-bookworm-slim
ENV NODE_ENV=production
# procps: ps and kill for `docker exec`; setpriv (util-linux, already in the base) drops root in the
# entrypoint. The apt lists, package caches and downloaded packages go in the same layer.
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends nginx supervisor procps; \
    apt-get clean; \
    rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/cache/apt/archives/*.deb /var/cache/debconf/*-old \
        /var/log/apt /var/log/dpkg.log /var/log/alternatives.log; \
    groupadd --gid 10001 forkyard; \
    useradd --uid 10001 --gid 10001 --home-dir /app --no-create-home --shell /usr/sbin/nologin forkyard; \
    nginx -v; supervisord --version; setpriv --version; test -x /usr/bin/kill; ps --version
WORKDIR /app
COPY package.json package-lock.json ./
# --ignore-scripts: `npm ci --omit=dev` would run `prepare` (tsc, a dev dependency); dist/ comes
# from the builder instead. zeromq ships prebuilt binaries for every platform: only Linux (x64,
# arm64, glibc: this image is Debian) stays.
RUN set -eux; \
    npm ci --omit=dev --ignore-scripts --no-audit --no-fund; \
    rm -rf /root/.npm /tmp/*; \
    zmq=node_modules/zeromq/build; \
    test -d "$zmq/linux"; \
    find "$zmq" -mindepth 1 -maxdepth 1 -type d ! -name linux -exec rm -rf {} +; \
    find "$zmq/linux" -mindepth 1 -maxdepth 1 -type d ! -name x64 ! -name arm64 -exec rm -rf {} +; \
    find "$zmq/linux" -type d -name 'musl-*' -prune -exec rm -rf {} +
COPY --from=builder /src/dist ./dist
COPY supervisor ./supervisor
COPY nginx ./nginx
COPY example ./example
COPY client ./client
COPY docker ./docker
COPY .env.example ./
# The log and data directories for a plain `docker run` (compose bind-mounts ./logs and ./data
# over them; the entrypoint hands them to the stack's user either way). A smoke test that the
# production install loads, native zeromq binary included.
RUN set -eux; \
    mkdir -p /app/logs /app/data; \
    chown forkyard:forkyard /app/logs /app/data; \
    test -x /app/docker/entrypoint.sh; test -x /app/docker/healthcheck.sh; \
    node -e "import('/app/dist/index.js').then(() => import('zeromq')).then(() => console.log('forkyard and zeromq load'))"

ENV FORKYARD_HOME=/app \
    FORKYARD_PROJECT_DIR=/app \
    FORKYARD_NODE=/usr/local/bin/node \
    FORKYARD_RUN_DIR=/tmp/forkyard-run \
    FORKYARD_PIDFILE=/tmp/forkyard-run/server.pid \
    FORKYARD_LOG_DIR=/app/logs \
    FORKYARD_LISTEN_HOST=0.0.0.0 \
    FORKYARD_PORT=8080 \
    FORKYARD_BIND=unix:/tmp/forkyard-run/server.sock \
    FORKYARD_READY_CHECKS=workers,push,supervisor

# No USER: the container starts as root so that the entrypoint can hand a root-owned ./logs or
# ./data to FORKYARD_UID:FORKYARD_GID (10001:10001), then drops to that user for good before
# anything else runs; compose gives it only CHOWN, SETUID and SETGID for that.
EXPOSE 8080
# supervisord stops every program gracefully on TERM (the server drains for up to its stopwaitsecs,
# 40 s); compose's stop_grace_period (45 s) is longer.
STOPSIGNAL SIGTERM
# Ready means every component: nginx, the workers, push, the bridge and supervisord's programs.
HEALTHCHECK --interval=10s --timeout=5s --start-period=60s --retries=3 CMD ["/app/docker/healthcheck.sh"]
# docker/entrypoint.sh: ownership of logs/ and data/, the drop to the stack's user, .env readable,
# `forkyard check` (a bad setting stops the container with its reason as its first output), the run
# directory, then exec supervisord as PID 1. `-e debug`: supervisord copies what a program prints
# (a crash, a refused setting at start) into its own output, i.e. `docker compose logs`; each
# program's JSON log still goes to its own file in ./logs.
ENTRYPOINT ["/app/docker/entrypoint.sh"]
CMD ["supervisord", "-n", "-c", "/app/supervisor/supervisord.conf", "-e", "debug"]
