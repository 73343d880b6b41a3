#!/usr/bin/env node
/**
 * The `forkyard` command. The only module (with the other bin/ entries) that reads process.argv
 * and loads .env. Exit codes: 0 ok, 1 failure, 2 bad settings or usage, 3 a worker failed to boot.
 */
import { yieldCpu } from '../process/priority.js'
import { config as loadDotenv } from 'dotenv'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { controlRequest, type ControlCommand } from '../arbiter/control.js'
import type { ArbiterStatus } from '../arbiter/arbiter.js'
import { loadConfig, type ConfigOverrides } from '../config/load.js'
import { exitCodeOf, exitCodes } from '../errors.js'
import { serve } from '../serve.js'
import { Bridge } from '../bridge/bridge.js'
import { loadEngineConfig } from '../config/engine.js'
import { loadBridgeConfig, loadPushConfig } from '../config/messaging.js'
import { PushServer } from '../push/push-server.js'
import { runService } from '../process/service.js'
import { fileURLToPath } from 'node:url'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { EnvWatcher } from '../config/watch.js'
import { definedEnv, readEnvFile, snapshot } from '../config/env-file.js'
import { loadLogConfig } from '../config/logging.js'
import { ProcessShell } from '../process/shell.js'
import { runNginx } from '../stack/nginx.js'
import { downNative, ensureDotenv, readProjectEnv, stackEnv, stackPaths, supervisorctl, supervisordPid, upNative } from '../stack/launcher.js'
import { loadStackConfig } from '../config/stack.js'
import { showLogs } from '../stack/logs.js'
import { dockerStack } from '../stack/docker.js'

/** The kit's own directory (where nginx/, supervisor/, client/ and dist/ are). */
const home = process.env.FORKYARD_HOME ?? fileURLToPath(new URL('../..', import.meta.url))
/** The project's directory (.env, run/, logs/, data/): where the command runs. */
const dir = process.env.FORKYARD_PROJECT_DIR ?? process.cwd()

// `forkyard ps | head`: a reader that goes away ends the command quietly.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code === 'EPIPE') process.exit(exitCodes.ok)
})

const say = (m: string): void => void process.stdout.write(`forkyard: ${m}\n`)

const usage = `Usage: forkyard <command> [options]

Commands:
  serve [app-module]   start the arbiter and workers serving the module's default export
                       (default: FORKYARD_APP)
                       (--reload: development, workers reload on source changes, pretty logs)
  status [--json]      list the workers of the running server
  reload               rolling reload (same as kill -HUP <arbiter pid>)
  stop                 graceful stop (same as kill -TERM <arbiter pid>)
  bridge               run the message bridge (FORKYARD_BRIDGE_*; on Redis with FORKYARD_ENGINE)
  push                 run the WebSocket push process (FORKYARD_PUSH_*)
  nginx                render nginx/nginx.conf.template from the settings and run nginx, logs relayed
  up                   start the whole stack under supervisord (nginx, server, push, bridge) from this
                       directory's .env (created on first run); wait until ready
  check                validate every setting (.env and the environment) as up does, then exit
  down                 stop the whole stack gracefully
  ps                   every supervised process, then every worker
  logs [-f] [--svc S] [--req ID] [--lines N] [--json]   the unified logs, merged in time order

Options (each mirrors a FORKYARD_* variable, see .env.example):
  -w, --workers N           FORKYARD_WORKERS (0 = one per CPU the cgroup allows)
  -b, --bind ADDR           FORKYARD_BIND, repeatable (host:port or unix:/path)
  -t, --timeout DURATION    FORKYARD_TIMEOUT
      --graceful-timeout D  FORKYARD_GRACEFUL_TIMEOUT
      --max-requests N      FORKYARD_MAX_REQUESTS
      --run-dir DIR         FORKYARD_RUN_DIR
      --env-file PATH       read variables from PATH instead of ./.env
      --json                machine-readable status
      --supervised          (serve, bridge, push, nginx) stop gracefully when the parent process
                            (supervisord) dies: supervisor/supervisord.conf passes it
`

const { values, positionals } = (() => {
  try {
    return parseArgs({
      allowPositionals: true,
      options: {
        workers: { type: 'string', short: 'w' },
        bind: { type: 'string', short: 'b', multiple: true },
        timeout: { type: 'string', short: 't' },
        'graceful-timeout': { type: 'string' },
        'max-requests': { type: 'string' },
        'run-dir': { type: 'string' },
        'env-file': { type: 'string' },
        json: { type: 'boolean' },
        reload: { type: 'boolean' },
        supervised: { type: 'boolean' },
        follow: { type: 'boolean', short: 'f' },
        svc: { type: 'string' },
        req: { type: 'string' },
        lines: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    })
  } catch (err) {
    process.stderr.write(`forkyard: ${(err as Error).message}\n\n${usage}`)
    process.exit(exitCodes.config)
  }
})()

function overrides(): ConfigOverrides {
  const o: ConfigOverrides = {}
  if (values.workers !== undefined) o.workers = values.workers
  if (values.bind !== undefined) o.bind = values.bind.join(',')
  if (values.timeout !== undefined) o.timeoutMs = values.timeout
  if (values['graceful-timeout'] !== undefined) o.gracefulTimeoutMs = values['graceful-timeout']
  if (values['max-requests'] !== undefined) o.maxRequests = values['max-requests']
  if (values['run-dir'] !== undefined) o.runDir = values['run-dir']
  return o
}

function fail(err: unknown): never {
  process.stderr.write(`forkyard: ${(err as Error)?.message ?? String(err)}\n`)
  process.exit(exitCodeOf(err))
}

async function control(cmd: ControlCommand): Promise<unknown> {
  const config = loadConfig(process.env, overrides())
  return controlRequest(join(config.runDir, 'arbiter.sock'), cmd, cmd === 'reload' ? 10 * 60_000 : 10_000)
}

function printStatus(s: ArbiterStatus): void {
  const rows = [['WORKER', 'PID', 'GEN', 'STATE', 'SERVED', 'INFLIGHT', 'RSS', 'HEARTBEAT', 'UPTIME']]
  for (const w of s.workers) {
    rows.push([String(w.worker), String(w.pid), String(w.generation), w.state, String(w.served), String(w.inflight), `${(w.rssBytes / 1048576).toFixed(1)}M`, `${(w.lastHeartbeatMsAgo / 1000).toFixed(1)}s ago`, `${Math.round(w.uptimeMs / 1000)}s`])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  process.stdout.write(`arbiter pid ${s.pid}, generation ${s.generation}, ${s.readyWorkers}/${s.expectedWorkers} workers ready${s.reloading ? ', reloading' : ''}, bind ${s.bind.join(' ')}, config ${s.configVersion}, jobs pid ${s.jobsPid ?? 'none'}\n`)
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i]!)).join('  ').trimEnd() + '\n')
}

async function main(): Promise<void> {
  if (values.help === true || positionals.length === 0) {
    process.stdout.write(usage)
    process.exit(positionals.length === 0 && values.help !== true ? exitCodes.config : exitCodes.ok)
  }
  const [command, ...rest] = positionals
  // Never `up` or `serve`: what they start would inherit the lower priority.
  if (['status', 'reload', 'stop', 'ps', 'logs'].includes(command ?? '')) yieldCpu()
  // The environment before .env: its keys win over the file, now and after a change (dotenv's rule).
  const baseEnv = { ...process.env }
  if (['up', 'down', 'ps', 'logs', 'check'].includes(command ?? '')) {
    // The stack commands read .env without copying it into this process's environment: supervisord
    // inherits that environment, and a value there would pin the key for every program.
    if (command === 'up') for (const m of ensureDotenv(home, dir, baseEnv)) say(m)
    const file = readProjectEnv(dir, values['env-file'])
    await stack(command ?? '', file, baseEnv)
    return
  }
  loadDotenv({ path: values['env-file'] ?? '.env', quiet: true })
  // Docker Compose instead of the native stack when an engine answers (server/stack/docker.ts).
  if (command === 'reload' && (await dockerStack('reload', home, process.env, values['env-file']))) return
  switch (command) {
    case 'serve': {
      const app = rest[0] ?? loadStackConfig(process.env).app
      await serve({ app, appFromSettings: rest[0] === undefined, ...overrides(), envFile: values['env-file'] ?? '.env', baseEnv, dev: values.reload === true, dieWithParent: values.supervised === true })
      return
    }
    case 'status': {
      const s = (await control('status')) as ArbiterStatus
      if (values.json === true) process.stdout.write(JSON.stringify(s, null, 2) + '\n')
      else printStatus(s)
      return
    }
    case 'reload': {
      const r = (await control('reload')) as { reloaded: boolean }
      process.stdout.write(r.reloaded ? 'reload complete\n' : 'reload aborted: see the server log\n')
      process.exit(r.reloaded ? exitCodes.ok : exitCodes.failure)
      return
    }
    case 'bridge': {
      const config = loadBridgeConfig(process.env)
      const engine = loadEngineConfig(process.env)
      // Killed supervisord: the bridge outlives the server's drain, acknowledging its last publishes.
      const server = loadConfig(process.env)
      await runService(
        'bridge',
        process.env.FORKYARD_LOG_LEVEL ?? 'info',
        async (log) => {
          const bridge = new Bridge(config, log, engine)
          await bridge.start()
          return Object.assign(bridge, { reconfigure: (env: NodeJS.ProcessEnv) => bridge.applyConfig(loadBridgeConfig(env), loadEngineConfig(env)) })
        },
        { envFile: values['env-file'] ?? '.env', baseEnv, dieWithParent: values.supervised === true, outlive: { pidfile: server.pidfile, ms: server.gracefulTimeoutMs + 10_000 } },
      )
      return
    }
    case 'push': {
      const config = loadPushConfig(process.env)
      await runService(
        'push',
        process.env.FORKYARD_LOG_LEVEL ?? 'info',
        async (log) => {
          const push = new PushServer(config, log)
          await push.listen()
          return Object.assign(push, { reconfigure: (env: NodeJS.ProcessEnv) => push.applyConfig(loadPushConfig(env)) })
        },
        { envFile: values['env-file'] ?? '.env', baseEnv, dieWithParent: values.supervised === true },
      )
      return
    }
    case 'nginx': {
      const shell = new ProcessShell({ svc: 'nginx', logs: loadLogConfig(process.env), base: { role: 'wrapper' } })
      const { log } = shell
      const envFile = resolve(values['env-file'] ?? '.env')
      let watcher: EnvWatcher | null = null
      try {
        if (existsSync(envFile)) watcher = new EnvWatcher(envFile, baseEnv, snapshot(definedEnv(process.env), Object.keys(readEnvFile(envFile))), log)
      } catch (err) {
        log.fatal({ err }, 'bad configuration')
        return shell.exit(exitCodes.config)
      }
      try {
        shell.exit(await runNginx(process.env, home, shell, { dieWithParent: values.supervised === true, watcher }))
      } catch (err) {
        // Into nginx.log like every other line of the wrapper, then the bounded exit.
        log.fatal({ err }, 'the nginx wrapper failed')
        shell.exit(exitCodeOf(err))
      }
      return
    }
    case 'stop':
      await control('stop')
      process.stdout.write('stopping\n')
      return
    default:
      process.stderr.write(`forkyard: expected a command (serve, status, reload, stop, bridge, push, nginx, up, down, ps, logs), got ${JSON.stringify(command)}\n\n${usage}`)
      process.exit(exitCodes.config)
  }
}

/** up, down, ps, logs, check: `file` is the project's .env, `base` the operator's environment. */
async function stack(command: string, file: Record<string, string>, base: NodeJS.ProcessEnv): Promise<void> {
  const seen: NodeJS.ProcessEnv = { ...file, ...base }
  if (['up', 'down', 'ps'].includes(command) && (await dockerStack(command, home, seen, values['env-file']))) return
  switch (command) {
    case 'check': {
      stackEnv(home, dir, base, file)
      say(`settings in ${join(dir, values['env-file'] ?? '.env')} and the environment are valid`)
      return
    }
    case 'up': {
      const st = stackEnv(home, dir, base, file)
      await upNative(st, say)
      say(`ready: ${st.url}  (make logs, make status, make reload, make down)`)
      return
    }
    case 'down':
      await downNative(stackPaths(home, dir, base, file), say)
      return
    case 'ps': {
      const st = stackPaths(home, dir, base, file)
      if (supervisordPid(st.runDir) === null) {
        say('the stack is not running (make up)')
        process.exit(exitCodes.notRunning)
      }
      process.stdout.write(supervisorctl(st, ['status']).out)
      try {
        printStatus((await controlRequest(join(st.runDir, 'arbiter.sock'), 'status')) as ArbiterStatus)
      } catch (err) {
        process.stdout.write(`server: ${(err as Error).message}\n`)
      }
      return
    }
    case 'logs': {
      const st = stackPaths(home, dir, base, file)
      await showLogs(st.logDir, { svc: values.svc, req: values.req }, { follow: values.follow === true, lines: Number(values.lines ?? 200), json: values.json === true, color: process.stdout.isTTY === true, write: (s) => void process.stdout.write(s) })
      return
    }
  }
}

main().catch(fail)
