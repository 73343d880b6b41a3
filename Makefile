# forkyard: `make help` lists the targets. Variables can be overridden: make bench DURATION=20
NODE        ?= node
FORKYARD    := $(NODE) dist/bin/forkyard.js
SVC         ?=
REQ         ?=
APP         ?= example/app.mjs
DEV_PORT    ?= 8000
DURATION    ?= 10
CONNECTIONS ?= 64
UNIT_TESTS        := $(wildcard test/unit/*.test.ts)
INTEGRATION_TESTS := $(wildcard test/integration/*.test.ts)

.PHONY: help build lint typecheck test test-unit test-integration test-container bench serve clean up down logs reload status

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

build: ## compile server/ to dist/
	npx tsc -p tsconfig.json

lint: ## eslint over sources, tests and benches
	npx eslint .

typecheck: ## strict type check of sources, tests and benches
	npx tsc -p tsconfig.test.json

test: build lint typecheck test-unit test-integration test-container ## everything CI runs

test-unit: build ## unit tests, with coverage
	$(NODE) --import tsx --test --experimental-test-coverage $(UNIT_TESTS)

test-integration: build ## integration tests: real processes, signals and sockets, one file at a time
	$(NODE) --import tsx --test --test-concurrency=1 $(INTEGRATION_TESTS)

test-container: build ## the stack in its container end to end (installs Docker and starts dockerd if missing)
	NODE=$(NODE) test/container/run.sh

bench: build ## forkyard vs bare node:cluster vs one process, as ratios (needs wrk)
	$(NODE) --import tsx bench/http.ts --duration $(DURATION) --connections $(CONNECTIONS)

serve: build ## run the prefork server in the foreground on $(APP)
	$(NODE) dist/bin/forkyard.js serve $(APP)

dev: build ## development: serve $(APP) on 127.0.0.1:$(DEV_PORT), workers reload on source changes, pretty logs
	FORKYARD_BIND=127.0.0.1:$(DEV_PORT) $(NODE) dist/bin/forkyard.js serve --reload $(APP)

up: build ## start nginx, server, push and bridge (Docker Compose if an engine answers, else natively); waits until ready
	$(FORKYARD) up

down: ## stop the whole stack gracefully
	$(FORKYARD) down

logs: ## follow the unified logs (SVC=push to filter by process, REQ=<id> for one request)
	$(FORKYARD) logs -f $(if $(SVC),--svc $(SVC)) $(if $(REQ),--req $(REQ))

reload: ## zero-downtime rolling reload of the workers
	$(FORKYARD) reload

status: ## every process and every worker
	$(FORKYARD) ps

clean: ## remove build output
	rm -rf dist coverage
