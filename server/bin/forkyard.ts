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
import { ForkyardError, codes, exitCodeOf, exitCodes } from '../errors.js'
import { serve } from '../serve.js'
import { Bridge } from '../bridge/bridge.js'
import { loadEngineConfig } from '../config/engine.js'
import { loadBridgeConfig, loadPushConfig } from '../config/messaging.js'
import { PushServer } from '../push/push-server.js'
import { runService } from '../process/service.js'
import { fileURLToPath } from 'node:url'
import { spawnSync } from 'node:child_process'
import { existsSync, writeFileSync } from 'node:fs'
import { userInfo } from 'node:os'
import { resolve } from 'node:path'
import { EnvWatcher } from '../config/watch.js'
import { definedEnv, readEnvFile, snapshot } from '../config/env-file.js'
import { loadLogConfig } from '../config/logging.js'
import { ProcessShell } from '../process/shell.js'
import { runNginx } from '../stack/nginx.js'
import { downNative, ensureDotenv, readProjectEnv, stackEnv, stackPaths, restartTargets, supervisorctl, supervisordPid, upNative, type StackPaths } from '../stack/launcher.js'
import { systemdUnit, unitName } from '../stack/systemd.js'
import { loadStackConfig } from '../config/stack.js'
import { parseLevel, showLogs } from '../stack/logs.js'
import { dockerStack } from '../stack/docker.js'
import { collectStack, formatCollected, formatTable, formatWorkers } from '../stack/status.js'
import { top } from '../stack/top.js'

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
  status [--json]      the running server's workers (requests, heartbeat, restarts, last exit)
                       and jobs process; --json: the arbiter's document, restart counters included;
                       under forkyard up also every process of the stack (as ps; "processes")
  reload               rolling reload (same as kill -HUP <arbiter pid>)
  stop                 graceful stop (same as kill -TERM <arbiter pid>)
  scale N              run N workers from now on (TTIN/TTOU until there; until the next start:
                       FORKYARD_WORKERS in .env keeps it); waits until N are ready
  bridge               run the message bridge (FORKYARD_BRIDGE_*; on Redis with FORKYARD_ENGINE)
  push                 run the WebSocket push process (FORKYARD_PUSH_*)
  nginx                render nginx/nginx.conf.template from the settings and run nginx, logs relayed
  up                   start the whole stack under supervisord (nginx, server, push, bridge) from this
                       directory's .env (created on first run); wait until ready
  check                validate every setting (.env and the environment) as up does, then exit
  down                 stop the whole stack gracefully
  ps [--json]          every process of the stack in one table (pid, state, uptime, CPU%, CPU
                       time, memory, restarts, last exit); --json: { processes: [...] }
  top [--interval S] [--count N]
                       ps redrawn every S seconds (default 2) with the stack's totals, like
                       pm2 monit; --count: stop after N frames
  startup [--print]    start the native stack at boot: writes a systemd unit for this project
                       (as root: installs and enables it; --print: only prints it)
  restart PROGRAM...   restart supervised programs (bridge, push, server, nginx, or all) and
                       nothing else; "server" stops gracefully first (a reload keeps serving)
  logs [-f] [--svc S] [--req ID] [--level L] [--lines N] [--json]
                       the unified logs, merged in time order; --level warn: warn and worse;
                       --req also searches the rotated files

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
        level: { type: 'string' },
        print: { type: 'boolean' },
        interval: { type: 'string' },
        count: { type: 'string' },
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

async function main(): Promise<void> {
  if (values.help === true || positionals.length === 0) {
    process.stdout.write(usage)
    process.exit(positionals.length === 0 && values.help !== true ? exitCodes.config : exitCodes.ok)
  }
  const [command, ...rest] = positionals
  // Never `up` or `serve`: what they start would inherit the lower priority.
  if (['status', 'reload', 'stop', 'ps', 'top', 'logs'].includes(command ?? '')) yieldCpu()
  // The environment before .env: its keys win over the file, now and after a change (dotenv's rule).
  const baseEnv = { ...process.env }
  if (['up', 'down', 'ps', 'top', 'logs', 'check', 'restart', 'startup'].includes(command ?? '')) {
    // The stack commands read .env without copying it into this process's environment: supervisord
    // inherits that environment, and a value there would pin the key for every program.
    if (command === 'up') for (const m of ensureDotenv(home, dir, baseEnv)) say(m)
    const file = readProjectEnv(dir, values['env-file'])
    await stack(command ?? '', file, baseEnv, rest)
    return
  }
  loadDotenv({ path: values['env-file'] ?? '.env', quiet: true })
  // Docker Compose instead of the native stack when an engine answers (server/stack/docker.ts).
  if (command === 'reload' && (await dockerStack('reload', home, process.env, values['env-file']))) return
  // status: natively when this host's arbiter socket is there, else from inside the container.
  const nativeArbiter = (): boolean => existsSync(join(loadConfig(process.env, overrides()).runDir, 'arbiter.sock'))
  if (command === 'status' && !nativeArbiter() && (await dockerStack('status', home, process.env, values['env-file'], values.json === true ? ['--json'] : []))) return
  switch (command) {
    case 'serve': {
      const app = rest[0] ?? loadStackConfig(process.env).app
      await serve({ app, appFromSettings: rest[0] === undefined, ...overrides(), envFile: values['env-file'] ?? '.env', baseEnv, dev: values.reload === true, dieWithParent: values.supervised === true })
      return
    }
    case 'status': {
      // Under `forkyard up`, every process of the stack too (as `forkyard ps`), like `pm2 status`;
      // collecting it asks the arbiter already.
      const st = stackPaths(home, dir, baseEnv, readProjectEnv(dir, values['env-file']))
      const sup = supervisordPid(st.runDir)
      const c = sup === null ? null : await collectStack(st, sup)
      const s = c?.arbiter ?? ((await control('status')) as ArbiterStatus)
      if (values.json === true) process.stdout.write(JSON.stringify(c === null ? s : { ...s, processes: c.status.processes }, null, 2) + '\n')
      else process.stdout.write((c === null ? '' : formatTable(c.status) + '\n') + formatWorkers(s))
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
    case 'scale': {
      await scale(rest[0])
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

/** `forkyard scale N`: TTIN/TTOU through the control socket until N are expected, then N ready. */
async function scale(raw: string | undefined): Promise<void> {
  const n = Number(raw)
  if (raw === undefined || !/^\d{1,3}$/.test(raw) || n < 1) throw new ForkyardError(codes.CONFIG, `Expected forkyard scale N with N a whole number from 1 to 999, got ${JSON.stringify(raw ?? '')}`)
  let st = (await control('status')) as ArbiterStatus
  for (let i = 0; i < 1000 && st.expectedWorkers !== n; i++) {
    await control(st.expectedWorkers < n ? 'ttin' : 'ttou')
    st = (await control('status')) as ArbiterStatus
  }
  const deadline = Date.now() + 120_000
  while (st.readyWorkers !== n && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200))
    st = (await control('status')) as ArbiterStatus
  }
  say(`${st.readyWorkers}/${st.expectedWorkers} workers ready${st.readyWorkers === n ? '' : ' (not yet all: see make logs)'}; FORKYARD_WORKERS in .env keeps ${n} after a restart`)
  if (st.readyWorkers !== n) process.exit(exitCodes.failure)
}

/** `forkyard startup`: the systemd unit; as root on a systemd machine, installed and enabled. */
function startup(st: StackPaths, printOnly: boolean): void {
  const me = userInfo()
  const group = spawnSync('id', ['-gn'], { encoding: 'utf8' }).stdout.trim() || String(me.gid)
  const unit = systemdUnit(st, { user: me.username, group, path: process.env.PATH ?? '/usr/local/bin:/usr/bin:/bin', node: process.execPath })
  const name = unitName(st.dir)
  if (printOnly) {
    process.stdout.write(unit)
    return
  }
  const target = join('/etc/systemd/system', name)
  if (me.uid !== 0) {
    process.stdout.write(unit)
    say(`not root: save the unit above as ${target} (or run forkyard startup as root), then: systemctl daemon-reload && systemctl enable --now ${name}`)
    return
  }
  writeFileSync(target, unit, { mode: 0o644 })
  say(`wrote ${target}`)
  if (!existsSync('/run/systemd/system')) {
    say(`systemd is not running on this machine (no /run/systemd/system): on one that runs it, systemctl daemon-reload && systemctl enable --now ${name}`)
    return
  }
  for (const args of [['daemon-reload'], ['enable', name]]) {
    const r = spawnSync('systemctl', args, { encoding: 'utf8' })
    if (r.status !== 0) throw new ForkyardError(codes.LAUNCH, `systemctl ${args.join(' ')} failed (exit ${r.status}): ${r.stderr}`)
  }
  say(`enabled: the stack starts at boot (systemctl start|stop|reload|status ${name}); forkyard down before systemctl start, or the unit finds it running`)
}

/** --interval (seconds) in ms and --count, checked. */
function topOptions(): [number, number | null] {
  const interval = Number(values.interval ?? 2)
  if (!Number.isFinite(interval) || interval < 0.2 || interval > 3600) throw new ForkyardError(codes.CONFIG, `Expected --interval (make top INTERVAL=) to be seconds between 0.2 and 3600, got ${JSON.stringify(values.interval)}`)
  const count = values.count === undefined ? null : Number(values.count)
  if (count !== null && (!Number.isInteger(count) || count < 1)) throw new ForkyardError(codes.CONFIG, `Expected --count to be a whole number of frames, 1 or more, got ${JSON.stringify(values.count)}`)
  return [Math.round(interval * 1000), count]
}

function topArgs(): string[] {
  topOptions()
  return [...(values.interval === undefined ? [] : ['--interval', values.interval]), ...(values.count === undefined ? [] : ['--count', values.count])]
}

/** up, down, ps, logs, check: `file` is the project's .env, `base` the operator's environment. */
async function stack(command: string, file: Record<string, string>, base: NodeJS.ProcessEnv, rest: string[]): Promise<void> {
  const seen: NodeJS.ProcessEnv = { ...file, ...base }
  const dockerArgs = command === 'ps' ? (values.json === true ? ['--json'] : []) : command === 'top' ? topArgs() : rest
  if (['up', 'down', 'ps', 'top', 'restart'].includes(command) && (await dockerStack(command, home, seen, values['env-file'], dockerArgs))) return
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
    case 'startup': {
      startup(stackPaths(home, dir, base, file), values.print === true)
      return
    }
    case 'restart': {
      const st = stackPaths(home, dir, base, file)
      if (supervisordPid(st.runDir) === null) {
        say('the stack is not running (make up)')
        process.exit(exitCodes.notRunning)
      }
      const r = supervisorctl(st, ['restart', ...restartTargets(rest)])
      process.stdout.write(r.out)
      process.exit(r.status === 0 ? exitCodes.ok : exitCodes.failure)
      return
    }
    case 'ps': {
      const st = stackPaths(home, dir, base, file)
      const pid = supervisordPid(st.runDir)
      if (pid === null) {
        say('the stack is not running (make up)')
        process.exit(exitCodes.notRunning)
      }
      const c = await collectStack(st, pid)
      if (values.json === true) {
        process.stdout.write(JSON.stringify(c.status, null, 2) + '\n')
        for (const p of c.problems) process.stderr.write(`forkyard: ${p}\n`)
      } else process.stdout.write(formatCollected(c))
      return
    }
    case 'top': {
      const st = stackPaths(home, dir, base, file)
      const [intervalMs, count] = topOptions()
      await top(st, { intervalMs, count, tty: process.stdout.isTTY === true, write: (s) => void process.stdout.write(s), supervisord: () => supervisordPid(st.runDir) })
      return
    }
    case 'logs': {
      const st = stackPaths(home, dir, base, file)
      const lines = Number(values.lines ?? 200)
      if (!Number.isInteger(lines) || lines < 0) throw new ForkyardError(codes.CONFIG, `Expected --lines (make logs LINES=) to be a whole number, got ${JSON.stringify(values.lines)}`)
      let level: string | undefined
      try {
        level = parseLevel(values.level)
      } catch (err) {
        throw new ForkyardError(codes.CONFIG, (err as Error).message)
      }
      await showLogs(st.logDir, { svc: values.svc, req: values.req, level }, { follow: values.follow === true, lines, json: values.json === true, color: process.stdout.isTTY === true, write: (s) => void process.stdout.write(s) })
      return
    }
  }
}

main().catch(fail)
