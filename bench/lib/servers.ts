/**
 * The servers the HTTP bench compares, each behind the kit's nginx configuration (front.ts) and
 * started in its own directory; each resolves once it answers through nginx.
 *   - cluster: bare node:cluster (bench/bare-cluster.mjs), the anchor a user would otherwise pick;
 *   - serve: `forkyard serve` with its defaults (access log, request ids, watchdog on), logging
 *     into a log directory as in production;
 *   - stack: the stack as shipped, `forkyard up` in a project whose .env names the hello app.
 */
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { startFront } from './front.js'
import { freePort, hasExited, httpOk, run, startLogged, stop, waitUntil, type Proc } from './proc.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const FORKYARD = here('../../dist/bin/forkyard.js')
export const HELLO = here('../hello.mjs')

export interface RunningServer {
  url: string
  /** The root of every process of this configuration (nginx included): its tree is measured. */
  roots: () => number[]
  /** Files the configuration's logs went to (sizes are reported). */
  logFiles: string[]
  /** Asks for a rolling reload (the stack only). */
  reload?: () => Promise<void>
  stop: () => Promise<void>
}

/** The parent's environment without anything that would change how a server under test runs. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('FORKYARD_') && k !== 'NODE_CLUSTER_SCHED_POLICY' && k !== 'NODE_OPTIONS') env[k] = v
  }
  return { ...env, ...extra }
}

function needBuild(): void {
  if (!existsSync(FORKYARD)) throw new Error(`${FORKYARD} is missing: run make build first`)
}

async function waitFor(what: string, proc: Proc, log: string, check: () => Promise<boolean>): Promise<void> {
  await waitUntil(what, 200, 100, async () => {
    if (hasExited(proc)) throw new Error(`${what}: the process exited; see ${log}`)
    return check()
  })
}

/** Bare node:cluster, scheduling none, on a Unix socket behind the kit's nginx. */
export async function startCluster(dir: string, workers: number): Promise<RunningServer> {
  const socket = join(dir, 'cluster.sock')
  const log = join(dir, 'cluster.log')
  const proc = startLogged(process.execPath, [here('../bare-cluster.mjs')], cleanEnv({ WORKERS: String(workers), SOCKET: socket, NODE_CLUSTER_SCHED_POLICY: 'none' }), log)
  try {
    await waitFor('bare node:cluster', proc, log, async () => /^ready /m.test(readFileSync(log, 'utf8')))
    const front = await startFront(dir, socket, { probePath: '/' })
    return {
      url: front.url,
      roots: () => [proc.pid, front.proc.pid],
      logFiles: [front.accessLog, log],
      stop: async () => {
        await front.stop()
        await stop(proc)
      },
    }
  } catch (err) {
    await stop(proc)
    throw err
  }
}

/** `forkyard serve` with its defaults, logs in <dir>/logs, behind the kit's nginx. */
export async function startServe(dir: string, workers: number, extra: Record<string, string> = {}, flags: string[] = []): Promise<RunningServer> {
  needBuild()
  const socket = join(dir, 'server.sock')
  const envFile = join(dir, 'empty.env')
  writeFileSync(envFile, '')
  const logDir = join(dir, 'logs')
  const env = cleanEnv({ FORKYARD_WORKERS: String(workers), FORKYARD_BIND: `unix:${socket}`, FORKYARD_RUN_DIR: join(dir, 'run'), FORKYARD_LOG_DIR: logDir, FORKYARD_JOBS: 'false', ...extra })
  const log = join(dir, 'serve.stdio')
  const proc = startLogged(process.execPath, [FORKYARD, 'serve', HELLO, '--env-file', envFile, ...flags], env, log)
  try {
    const front = await startFront(dir, socket)
    await waitFor('every forkyard worker ready', proc, log, async () => {
      const r = await run(process.execPath, [FORKYARD, 'status', '--json', '--env-file', envFile], 10_000, env)
      return r.code === 0 && (JSON.parse(r.stdout) as { readyWorkers: number }).readyWorkers === workers
    })
    return {
      url: front.url,
      roots: () => [proc.pid, front.proc.pid],
      logFiles: [front.accessLog, join(logDir, 'server.log')],
      stop: async () => {
        await front.stop()
        await stop(proc)
      },
    }
  } catch (err) {
    await stop(proc)
    throw err
  }
}

/** The stack as shipped: `forkyard up` natively in a project directory serving the hello app. */
export async function startStack(dir: string, workers: number, extra: Record<string, string> = {}): Promise<RunningServer> {
  needBuild()
  const project = join(dir, 'project')
  mkdirSync(project, { recursive: true })
  const port = await freePort()
  const pushPort = await freePort()
  writeFileSync(
    join(project, '.env'),
    [`FORKYARD_APP=${HELLO}`, `FORKYARD_PORT=${port}`, `FORKYARD_PUSH_BIND=127.0.0.1:${pushPort}`, `FORKYARD_WORKERS=${workers}`, 'FORKYARD_DOCKER=0', `FORKYARD_STATIC_DIR=${project}`, ...Object.entries(extra).map(([k, v]) => `${k}=${v}`), ''].join('\n'),
  )
  const env = cleanEnv({})
  const forkyard = (command: string, timeoutMs: number) => run(process.execPath, [FORKYARD, command], timeoutMs, env, project)
  const up = await forkyard('up', 120_000)
  if (up.code !== 0) {
    await forkyard('down', 60_000)
    throw new Error(`forkyard up failed (${up.code}): ${up.stdout}${up.stderr}`)
  }
  const url = `http://127.0.0.1:${port}/`
  if (!(await httpOk(url))) throw new Error(`the stack does not answer ${url}`)
  const supervisord = (): number => Number(readFileSync(join(project, 'run', 'supervisord.pid'), 'utf8').trim())
  return {
    url,
    roots: () => [supervisord()],
    logFiles: ['access.log', 'server.log', 'nginx.log', 'push.log', 'bridge.log'].map((f) => join(project, 'logs', f)),
    reload: async () => {
      const r = await forkyard('reload', 60_000)
      if (r.code !== 0) throw new Error(`forkyard reload failed (${r.code}): ${r.stdout}${r.stderr}`)
    },
    stop: async () => {
      const down = await forkyard('down', 90_000)
      if (down.code !== 0) process.stderr.write(`forkyard down failed (${down.code}): ${down.stdout}${down.stderr}\n`)
    },
  }
}
