# forkyard: `make help` lists the targets. Variables can be overridden: make bench DURATION=20
# On a fresh machine `make up` and `make test` install what they need first (npm ci when
# node_modules is missing or older than package-lock.json; Debian packages with apt-get as root,
# see scripts/system-deps.sh) and build; nothing is redone when nothing changed.
NODE        ?= node
FORKYARD    := $(NODE) dist/bin/forkyard.js
BIN         := node_modules/.bin
DEPS        := node_modules/.package-lock.json
BUILT       := dist/.built
SOURCES     := $(shell find server -name '*.ts') tsconfig.json
SVC         ?=
REQ         ?=
P           ?=
N           ?=
LINES       ?=
LEVEL       ?=
FOLLOW      ?=
APP         ?= example/app.mjs
DEV_PORT    ?= 8000
DURATION    ?= 10
CONNECTIONS ?= 64
DASHBOARD_SECONDS ?= 90
UNIT_TESTS        := $(wildcard test/unit/*.test.ts)
INTEGRATION_TESTS := $(wildcard test/integration/*.test.ts)

.PHONY: help build settings-table test-deps lint typecheck test test-unit test-integration test-container bench bench-http bench-push bench-cross-host serve dev clean up down logs reload status restart scale startup top dashboard-screenshot

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

# npm ci writes node_modules/.package-lock.json: newer than package-lock.json once installed.
# --ignore-scripts: the package's own `prepare` (tsc) is the build below; zeromq ships prebuilt
# binaries, esbuild (tsx) its platform package.
$(DEPS): package.json package-lock.json
	@scripts/system-deps.sh up
	npm ci --ignore-scripts --no-audit --no-fund
	@touch $@

$(BUILT): $(DEPS) $(SOURCES)
	rm -rf dist
	$(BIN)/tsc -p tsconfig.json
	@touch $@

build: $(BUILT) ## compile server/ to dist/ (installs node_modules first when needed)

settings-table: $(DEPS) ## regenerate README's settings table from .env.example and the schemas
	$(NODE) --import tsx scripts/settings-table.ts --write

test-deps: $(DEPS) ## what the tests need from the system (apt-get as root: nginx, supervisor, wrk, chromium, git, redis-server, iproute2)
	@scripts/system-deps.sh test

lint: $(DEPS) ## eslint over sources, tests and benches
	$(BIN)/eslint .

typecheck: $(DEPS) ## strict type check of sources, tests and benches
	$(BIN)/tsc -p tsconfig.test.json

test: test-deps build lint typecheck test-unit test-integration test-container ## everything CI runs

test-unit: build ## unit tests, with coverage
	$(NODE) --import tsx --test --experimental-test-coverage $(UNIT_TESTS)

test-integration: build test-deps ## integration tests: real processes, signals and sockets, one file at a time
	$(NODE) --import tsx --test --test-concurrency=1 $(INTEGRATION_TESTS)

test-container: build ## the stack in its container end to end (installs Docker and starts dockerd if missing)
	NODE=$(NODE) test/container/run.sh

bench: bench-http bench-push ## both benches, through nginx, forkyard beside its anchors, as ratios (needs wrk)

bench-http: build ## HTTP through nginx: bare node:cluster, forkyard serve, the stack as shipped; a reload under POST load
	$(NODE) --import tsx bench/http.ts --duration $(DURATION) --connections $(CONNECTIONS)

bench-push: build ## push through nginx: forkyard vs one ws process (fan-out, /healthz), then memory per idle connection
	$(NODE) --import tsx bench/push.ts --clients 1000 --messages 100 --rate 10 --max-messages 300 --rounds 3
	$(NODE) --import tsx bench/push-memory.ts

bench-cross-host: build ## push fan-out across 3 hosts on one Redis (network namespaces, root) against 1 host embedded
	$(NODE) --import tsx bench/cross-host.ts --clients 300 --rates 100,1000 --seconds 10 --rounds 2

serve: build ## run the prefork server in the foreground on $(APP)
	$(NODE) dist/bin/forkyard.js serve $(APP)

dev: build ## development: serve $(APP) on 127.0.0.1:$(DEV_PORT), workers reload on source changes, pretty logs
	FORKYARD_BIND=127.0.0.1:$(DEV_PORT) $(NODE) dist/bin/forkyard.js serve --reload $(APP)

up: build ## start nginx, server, push and bridge (Docker Compose if an engine answers, else natively); waits until ready
	$(FORKYARD) up

down: $(BUILT) ## stop the whole stack gracefully
	$(FORKYARD) down

logs: $(BUILT) ## the unified logs: follows, or LINES=200 prints the last lines and exits; SVC=push, REQ=<id>, LEVEL=error filter
	$(FORKYARD) logs $(if $(or $(LINES),$(REQ),$(filter 0,$(FOLLOW))),,-f) $(if $(LINES),--lines $(LINES)) $(if $(SVC),--svc $(SVC)) $(if $(REQ),--req $(REQ)) $(if $(LEVEL),--level $(LEVEL))

reload: $(BUILT) ## zero-downtime rolling reload of the workers
	$(FORKYARD) reload

restart: $(BUILT) ## restart supervised programs and nothing else: make restart P=push (bridge, push, server, nginx, all)
	$(FORKYARD) restart $(or $(P),$(error expected P=<program>: bridge, push, server, nginx or all))

scale: $(BUILT) ## run N workers from now on: make scale N=4 (FORKYARD_WORKERS in .env keeps it after a restart)
	$(FORKYARD) scale $(or $(N),$(error expected N=<number of workers>))

startup: $(BUILT) ## start the native stack at boot: a systemd unit for this directory (as root: installed and enabled)
	$(FORKYARD) startup

status: $(BUILT) ## every process: pid, state, CPU, memory, restarts, last exit
	$(FORKYARD) ps

top: $(BUILT) ## make status, redrawn every 2 s with the stack's totals (like pm2 monit); INTERVAL=5, COUNT=1
	$(FORKYARD) top $(if $(INTERVAL),--interval $(INTERVAL)) $(if $(COUNT),--count $(COUNT))

dashboard-screenshot: $(DEPS) ## docs/grafana-dashboard.png: the dashboard's queries, by a Prometheus of its own, on the running stack under load (DASHBOARD_SECONDS=90)
	$(NODE) --import tsx scripts/dashboard-screenshot.ts --seconds $(DASHBOARD_SECONDS)

clean: ## remove build output (node_modules stays)
	rm -rf dist coverage
