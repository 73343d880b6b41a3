/**
 * The three kinds of server under test, each started on a free 127.0.0.1 port with its output in
 * <dir>/server.log, and returned once it answers (and, for forkyard, once every worker is ready).
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { ArbiterStatus } from '../../server/arbiter/arbiter.js'
import { freePort, hasExited, httpOk, killStrays, run, startLogged, stop, waitUntil, type Proc } from './proc.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const FORKYARD = here('../../dist/bin/forkyard.js')
const HELLO = here('../hello.mjs')

export interface RunningServer {
  url: string
  /** The process we started: forkyard's arbiter, the cluster primary, or the single process. */
  pid: number
  workerPids: number[]
  /** Requests served per worker id (forkyard status); null for the baselines, which have none. */
  served: (() => Promise<Map<number, number>>) | null
  stop: () => Promise<void>
}

export interface ForkyardOptions {
  workers: number
  scheduling: 'none' | 'rr'
  accessLog: boolean
}

/** The parent's environment without anything that would change how a server under test runs. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('FORKYARD_') && k !== 'NODE_CLUSTER_SCHED_POLICY' && k !== 'NODE_OPTIONS') env[k] = v
  }
  return { ...env, ...extra }
}

async function waitHealthy(proc: Proc, url: string, log: string): Promise<void> {
  await waitUntil(`${url}healthz`, 100, 100, async () => {
    if (hasExited(proc)) throw new Error(`The server exited during startup; see ${log}`)
    return httpOk(`${url}healthz`)
  })
}

export async function startForkyard(dir: string, o: ForkyardOptions): Promise<RunningServer> {
  if (!existsSync(FORKYARD)) throw new Error(`${FORKYARD} is missing: run npx tsc -p tsconfig.json first`)
  const port = await freePort()
  // An empty env file, so a developer's ./.env cannot change the settings under test.
  const envFile = join(dir, 'empty.env')
  writeFileSync(envFile, '')
  const env = cleanEnv({
    FORKYARD_WORKERS: String(o.workers),
    FORKYARD_BIND: `127.0.0.1:${port}`,
    FORKYARD_RUN_DIR: join(dir, 'run'),
    FORKYARD_SCHEDULING: o.scheduling,
    FORKYARD_ACCESS_LOG: String(o.accessLog),
    FORKYARD_GRACEFUL_TIMEOUT: '5s',
  })
  const log = join(dir, 'server.log')
  const proc = startLogged(process.execPath, [FORKYARD, 'serve', HELLO, '--env-file', envFile], env, log)
  const status = async (): Promise<ArbiterStatus> => {
    const r = await run(process.execPath, [FORKYARD, 'status', '--json', '--env-file', envFile], 10_000, env)
    if (r.code !== 0) throw new Error(`forkyard status exited with ${r.code}: ${r.stderr}`)
    return JSON.parse(r.stdout) as ArbiterStatus
  }
  const server: RunningServer = {
    url: `http://127.0.0.1:${port}/`,
    pid: proc.pid,
    workerPids: [],
    served: async () => new Map((await status()).workers.map((w) => [w.worker, w.served])),
    stop: async () => {
      await stop(proc)
      killStrays(server.workerPids)
    },
  }
  try {
    await waitHealthy(proc, server.url, log)
    // /healthz answers as soon as one worker listens; wait for all of them.
    await waitUntil('every forkyard worker ready', 50, 100, async () => {
      const s = await status()
      server.workerPids = s.workers.map((w) => w.pid)
      return s.readyWorkers === o.workers
    })
  } catch (err) {
    await server.stop()
    throw err
  }
  return server
}

/** For the baselines: start `node <script>` and wait for its "ready <pids>" line and /healthz. */
async function startScript(dir: string, script: string, extra: Record<string, string>): Promise<RunningServer> {
  const port = await freePort()
  const log = join(dir, 'server.log')
  const proc = startLogged(process.execPath, [here(script)], cleanEnv({ ...extra, PORT: String(port) }), log)
  const server: RunningServer = {
    url: `http://127.0.0.1:${port}/`,
    pid: proc.pid,
    workerPids: [],
    served: null,
    stop: async () => {
      await stop(proc)
      killStrays(server.workerPids)
    },
  }
  try {
    await waitUntil(`"ready" in ${log}`, 100, 100, () => {
      if (hasExited(proc)) throw new Error(`The server exited during startup; see ${log}`)
      const pids = /^ready ([\d ]+)$/m.exec(readFileSync(log, 'utf8'))?.[1]
      if (pids === undefined) return false
      server.workerPids = pids.split(' ').map(Number).filter((pid) => pid !== proc.pid)
      return true
    })
    await waitHealthy(proc, server.url, log)
  } catch (err) {
    await server.stop()
    throw err
  }
  return server
}

export function startCluster(dir: string, workers: number): Promise<RunningServer> {
  return startScript(dir, '../bare-cluster.mjs', { WORKERS: String(workers) })
}

export function startSingle(dir: string): Promise<RunningServer> {
  return startScript(dir, '../single.mjs', {})
}
