/**
 * The servers bench/push.ts compares, each behind the same nginx (the kit's template, rendered by
 * server/stack/nginx.ts, with its /ws location): forkyard's bridge + push processes, and one plain
 * `ws` process (bench/ws-single.mjs). --direct skips nginx.
 */
import { spawn } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nginxValues, renderTemplate } from '../../server/stack/nginx.js'
import type { Gone } from './push-cpu.js'
import { freePort, hasExited, httpOk, run, sleep, startLogged, stop, waitUntil, type Proc } from './proc.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const HOME = here('../../')
const FORKYARD = here('../../dist/bin/forkyard.js')
const PUBLISHER = here('../push-publisher.mjs')
const SINGLE = here('../ws-single.mjs')
const POLLER = here('../push-health-poller.mjs')
// The push process's /readyz is polled this often during a run: its readiness is its heartbeat
// coming back through the bridge, in the same queue as the messages.
const READY_POLL_MS = 1000
const READY_TIMEOUT_MS = 3000

export type System = 'forkyard' | 'single'

export interface Generated extends Gone {
  sendMs: number
  failed: number
}

/** What /readyz of the push process said during a run. */
export interface Readiness {
  polls: number
  /** Answers other than 200. */
  notReady: number
  /** No answer within READY_TIMEOUT_MS (this process, busy with the clients, may be the slow one). */
  unanswered: number
  /** The largest heartbeatLagMs seen: how long its own heartbeat took through the bridge. */
  maxHeartbeatLagMs: number | null
}

/** Per path (/healthz, /readyz): what bench/push-health-poller.mjs saw during a run. */
export type Health = Record<string, { polls: number; notOk: number; maxMs: number | null; p99Ms: number | null; over100: number }>

/** What a server under test offers the bench. */
export interface Target {
  system: System
  /** Where the clients connect: nginx's /ws, or the server's own with --direct. */
  url: string
  /** Long-running processes whose CPU time is measured, by name (nginx included). */
  pids: Record<string, number>
  /** Sends the messages; resolves when the generator is done. */
  generate: (count: number, rate: number) => Promise<Generated>
  counters: () => Promise<Record<string, unknown> | null>
  /** Starts polling the server's readiness during a run (forkyard only); the returned function stops it. */
  watchReadiness: (() => () => Promise<Readiness>) | null
  /** Health endpoints polled from another process during the run (forkyard's push process). */
  healthUrls: string[]
  stop: () => Promise<void>
}

export interface TargetOptions {
  channel: string
  /** forkyard's publisher: publishes in flight at unlimited rate. */
  window: number
  nginx: boolean
}

/** The parent's environment without anything that would change how a process under test runs. */
export function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('FORKYARD_') && k !== 'NODE_OPTIONS') env[k] = v
  }
  return { ...env, ...extra }
}

async function waitLog(proc: Proc, log: string, text: string): Promise<void> {
  await waitUntil(`${JSON.stringify(text)} in ${log}`, 100, 100, () => {
    if (hasExited(proc)) throw new Error(`The process exited during startup; see ${log}`)
    return readFileSync(log, 'utf8').includes(text)
  })
}

/**
 * nginx with the kit's template in front of a WebSocket server on 127.0.0.1:upstreamPort: the
 * push location (/ws) as shipped; the access log goes to a file in `dir` instead of the FIFO that
 * `forkyard nginx` reads (one line per connection, at its end).
 */
async function startNginx(dir: string, upstreamPort: number): Promise<{ port: number; proc: Proc }> {
  const port = await freePort()
  const runDir = join(dir, 'nginx')
  const values = nginxValues(
    cleanEnv({ FORKYARD_RUN_DIR: runDir, FORKYARD_BIND: `unix:${join(runDir, 'server.sock')}`, FORKYARD_PUSH_BIND: `127.0.0.1:${upstreamPort}`, FORKYARD_PORT: String(port) }),
    HOME,
  )
  values.ACCESS_LOG = join(dir, 'nginx-access.log')
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(runDir, 'nginx-temp', d), { recursive: true, mode: 0o700 })
  const conf = join(runDir, 'nginx.conf')
  writeFileSync(conf, renderTemplate(readFileSync(join(HOME, 'nginx/nginx.conf.template'), 'utf8'), values))
  const log = join(dir, 'nginx.log')
  const proc = startLogged('nginx', ['-e', 'stderr', '-c', conf], { ...process.env, TZ: 'UTC' }, log)
  await waitUntil('nginx listening', 100, 100, async () => {
    if (hasExited(proc)) throw new Error(`nginx exited during startup; see ${log}`)
    // Any answer will do (there is no app server behind /): nginx is listening.
    return fetch(`http://127.0.0.1:${port}/nginx-bench-probe`, { signal: AbortSignal.timeout(1000) }).then(
      () => true,
      () => false,
    )
  })
  return { port, proc }
}

/** nginx's workers, which do the proxying (the master only supervises), by PID. */
function childrenOf(pid: number): number[] {
  const out: number[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8')
      // The parent PID is the second field after the ")" that closes the command name.
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) out.push(Number(name))
    } catch {
      // gone meanwhile
    }
  }
  return out
}

function nginxPids(nginx: Proc | null): Record<string, number> {
  if (nginx === null) return {}
  return Object.fromEntries(childrenOf(nginx.pid).map((pid, i) => [i === 0 ? 'nginx' : `nginx${i + 1}`, pid]))
}

/** Wraps a server's /ws with nginx when asked: the URL the clients use and nginx's process. */
async function front(dir: string, o: TargetOptions, port: number): Promise<{ url: string; nginx: Proc | null }> {
  if (!o.nginx) return { url: `ws://127.0.0.1:${port}/ws`, nginx: null }
  const n = await startNginx(dir, port)
  return { url: `ws://127.0.0.1:${n.port}/ws`, nginx: n.proc }
}

export async function startForkyard(dir: string, o: TargetOptions): Promise<Target> {
  const port = await freePort()
  // An empty env file, so a developer's ./.env cannot change the settings under test.
  const envFile = join(dir, 'empty.env')
  writeFileSync(envFile, '')
  const env = cleanEnv({
    FORKYARD_RUN_DIR: join(dir, 'run'),
    FORKYARD_PUSH_BIND: `127.0.0.1:${port}`,
    // Every client comes from 127.0.0.1: the default per-address limit (20/s) would refuse most.
    FORKYARD_PUSH_CONN_RATE: '100000',
    // The bench counts every message delivered, however late: the lag cut (which would close
    // clients at saturation, test/integration/push-overload.test.ts) is off.
    FORKYARD_PUSH_MAX_LAG: '0',
  })
  const bridgeLog = join(dir, 'bridge.log')
  const pushLog = join(dir, 'push.log')
  const bridge = startLogged(process.execPath, [FORKYARD, 'bridge', '--env-file', envFile], env, bridgeLog)
  let push: Proc | null = null
  let nginx: Proc | null = null
  const stopAllOf = async (): Promise<void> => {
    if (nginx !== null) await stop(nginx)
    if (push !== null) await stop(push)
    await stop(bridge)
  }
  let url: string
  try {
    await waitLog(bridge, bridgeLog, '"bridge listening"')
    push = startLogged(process.execPath, [FORKYARD, 'push', '--env-file', envFile], env, pushLog)
    const pushProc = push
    await waitLog(pushProc, pushLog, '"push listening"')
    // Ready = its own heartbeat came back through the bridge: the whole path works.
    await waitUntil('push /readyz', 100, 100, () => {
      if (hasExited(pushProc)) throw new Error(`The push process exited during startup; see ${pushLog}`)
      return httpOk(`http://127.0.0.1:${port}/readyz`)
    })
    ;({ url, nginx } = await front(dir, o, port))
  } catch (err) {
    await stopAllOf()
    throw err
  }
  return {
    system: 'forkyard',
    url,
    pids: { push: push.pid, bridge: bridge.pid, ...nginxPids(nginx) },
    generate: async (count, rate) => {
      const timeoutMs = 60_000 + (rate > 0 ? (count / rate) * 1000 : 0)
      const r = await run(process.execPath, [PUBLISHER], timeoutMs, { ...env, CHANNEL: o.channel, COUNT: String(count), RATE: String(rate), WINDOW: String(o.window) })
      const line = r.stdout.trim().split('\n').at(-1) ?? ''
      if (r.code !== 0 || !line.startsWith('{')) throw new Error(`The publisher exited with ${r.code}: ${r.stdout}${r.stderr}`)
      const done = JSON.parse(line) as { sendMs: number; failed: number; cpuMs: number; cpuTotalMs: number }
      return { sendMs: done.sendMs, failed: done.failed, cpuMs: { publisher: done.cpuMs }, cpuTotalMs: done.cpuTotalMs }
    },
    watchReadiness: () => {
      const r: Readiness = { polls: 0, notReady: 0, unanswered: 0, maxHeartbeatLagMs: null }
      let stopped = false
      const loop = (async () => {
        // Bounded by the run: stops when the returned function is called.
        while (!stopped) {
          r.polls++
          try {
            const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(READY_TIMEOUT_MS) })
            const body = (await res.json()) as { heartbeatLagMs?: number | null }
            if (res.status !== 200) r.notReady++
            if (typeof body.heartbeatLagMs === 'number') r.maxHeartbeatLagMs = Math.max(r.maxHeartbeatLagMs ?? 0, body.heartbeatLagMs)
          } catch {
            r.unanswered++
          }
          await sleep(READY_POLL_MS)
        }
      })()
      return async () => {
        stopped = true
        await loop
        return r
      }
    },
    healthUrls: [`http://127.0.0.1:${port}/healthz`, `http://127.0.0.1:${port}/readyz`],
    counters: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) })
      const body = (await res.json()) as Record<string, unknown>
      return { counters: body.counters, feed: body.feed, bridge: body.bridge }
    },
    stop: stopAllOf,
  }
}

export async function startSingle(dir: string, o: TargetOptions): Promise<Target> {
  const port = await freePort()
  const log = join(dir, 'single.log')
  const proc = startLogged(process.execPath, [SINGLE], cleanEnv({ PORT: String(port) }), log)
  let nginx: Proc | null = null
  let url: string
  try {
    await waitLog(proc, log, 'ready')
    await waitUntil('single /healthz', 100, 100, () => httpOk(`http://127.0.0.1:${port}/healthz`))
    ;({ url, nginx } = await front(dir, o, port))
  } catch (err) {
    await stop(proc)
    throw err
  }
  return {
    system: 'single',
    url,
    pids: { server: proc.pid, ...nginxPids(nginx) },
    generate: async (count, rate) => {
      const timeoutMs = 60_000 + (rate > 0 ? (count / rate) * 1000 : 0)
      const res = await fetch(`http://127.0.0.1:${port}/run?channel=${o.channel}&count=${count}&rate=${rate}`, { signal: AbortSignal.timeout(timeoutMs) })
      const done = (await res.json()) as { sendMs: number; failed: number }
      return { sendMs: done.sendMs, failed: done.failed, cpuMs: {}, cpuTotalMs: 0 }
    },
    counters: () => Promise.resolve(null),
    watchReadiness: null,
    healthUrls: [],
    stop: async () => {
      if (nginx !== null) await stop(nginx)
      await stop(proc)
    },
  }
}

/** Polls `urls` from another process until the returned function is called; null when there are none. */
export function watchHealth(urls: string[], env: NodeJS.ProcessEnv = process.env): (() => Promise<Health>) | null {
  if (urls.length === 0) return null
  const child = spawn(process.execPath, [POLLER, ...urls], { stdio: ['pipe', 'pipe', 'inherit'], env })
  let out = ''
  child.stdout.on('data', (d: Buffer) => (out += d.toString()))
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()))
  return async () => {
    child.stdin.end()
    await Promise.race([exited, sleep(10_000)])
    if (child.exitCode === null) child.kill('SIGKILL')
    return (out.trim() === '' ? {} : JSON.parse(out.trim().split('\n').at(-1)!)) as Health
  }
}
