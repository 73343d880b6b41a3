/**
 * Resume storm: kill -9 of the push process with C clients connected, while a publisher keeps
 * publishing; supervisord's part (starting it again) is played here after --restart-ms. Every
 * client is the kit's browser client (client/push-client.js, with `ws`), which reconnects with
 * jitter and resubscribes from its last offset: C history requests and replays at once.
 *
 *   flock /tmp/forkyard-bench.lock node --import tsx bench/push-storm.ts [--clients 1000] [--rate 100]
 *
 * Reports how long /healthz and /readyz of the new push process took to answer while the storm
 * was replayed (polled every 50 ms from another process, from the moment it listens), how long
 * until every client had every message again, and whether any message was missed or duplicated.
 * Direct, without nginx: the question is the push process's own event loop.
 * Writes bench/results/push-storm-<date>.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { PushClient } from '../client/push-client.js'
import { cleanEnv, watchHealth, type Health } from './lib/push-targets.js'
import { freePort, hasExited, httpOk, positiveInt, run, sleep, startLogged, runBench, stop, waitUntil, type Proc } from './lib/proc.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const FORKYARD = here('../dist/bin/forkyard.js')
const PUBLISHER = here('push-publisher.mjs')
const CHANNEL = 'storm'

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    rate: { type: 'string', default: '100' },
    seconds: { type: 'string', default: '12' },
    'kill-at-ms': { type: 'string', default: '4000' },
    'restart-ms': { type: 'string', default: '1000' },
  },
})
const clients = positiveInt('clients', values.clients)
const rate = positiveInt('rate', values.rate)
const seconds = positiveInt('seconds', values.seconds)
const killAtMs = positiveInt('kill-at-ms', values['kill-at-ms'])
const restartMs = positiveInt('restart-ms', values['restart-ms'])

async function waitLog(proc: Proc, log: string, text: string, from = 0): Promise<void> {
  await waitUntil(`${JSON.stringify(text)} in ${log}`, 200, 50, () => {
    if (hasExited(proc)) throw new Error(`exited; see ${log}`)
    return readFileSync(log, 'utf8').slice(from).includes(text)
  })
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'forkyard-bench-storm-'))
  const port = await freePort()
  const envFile = join(dir, 'empty.env')
  writeFileSync(envFile, '')
  const env = cleanEnv({ FORKYARD_RUN_DIR: join(dir, 'run'), FORKYARD_PUSH_BIND: `127.0.0.1:${port}`, FORKYARD_PUSH_CONN_RATE: '100000', FORKYARD_BRIDGE_DATA_DIR: join(dir, 'data') })
  const bridgeLog = join(dir, 'bridge.log')
  const pushLog = join(dir, 'push.log')
  const bridge = startLogged(process.execPath, [FORKYARD, 'bridge', '--env-file', envFile], env, bridgeLog)
  await waitLog(bridge, bridgeLog, '"bridge listening"')
  const startPush = (extra: string[] = []): Proc => startLogged(process.execPath, [...extra, FORKYARD, 'push', '--env-file', envFile], env, pushLog)
  let push = startPush()
  await waitLog(push, pushLog, '"push listening"')
  await waitUntil('push /readyz', 200, 50, () => httpOk(`http://127.0.0.1:${port}/readyz`))

  // Per client: the offsets received, to find gaps and duplicates.
  const got = Array.from({ length: clients }, () => new Set<number>())
  let duplicates = 0
  let recovered = 0
  let gaps = 0
  const fleet: PushClient[] = []
  for (let i = 0; i < clients; i++) {
    const c = new PushClient(`ws://127.0.0.1:${port}/ws`, { WebSocket: WebSocket as unknown as typeof globalThis.WebSocket })
    c.subscribe(CHANNEL, (_data, msg) => {
      const set = got[i]!
      if (set.has(msg.offset)) duplicates++
      set.add(msg.offset)
    })
    c.onrecovered = () => void recovered++
    c.ongap = () => void gaps++
    fleet.push(c)
    if (i % 100 === 99) await sleep(100)
  }
  await sleep(1000)
  const total = rate * seconds
  const publishing = run(process.execPath, [PUBLISHER], 120_000, { ...env, CHANNEL, COUNT: String(total), RATE: String(rate), WINDOW: '1000' })
  // Polling from before the kill, so the poller is warm (its first fetch to an address is slow);
  // only the polls that began once the new process listened count.
  const stopHealth = watchHealth([`http://127.0.0.1:${port}/healthz`, `http://127.0.0.1:${port}/readyz`], { ...process.env, SAMPLES: '1' })!
  await sleep(killAtMs)
  const killedAt = performance.now()
  push.child.kill('SIGKILL')
  await push.exited
  await sleep(restartMs)
  const logFrom = readFileSync(pushLog, 'utf8').length
  // PUSH_PROFILE=<dir>: the restarted push process writes a CPU profile there when it stops.
  push = startPush(process.env.PUSH_PROFILE === undefined ? [] : ['--cpu-prof', `--cpu-prof-dir=${process.env.PUSH_PROFILE}`])
  await waitLog(push, pushLog, '"push listening"', logFrom)
  const listeningAt = performance.now()
  const published = await publishing
  const everything = (): boolean => got.every((s) => s.size === total)
  await waitUntil('every client has every message', 1200, 50, everything).catch(() => undefined)
  const allAt = performance.now()
  const raw = (await stopHealth()) as unknown as Record<string, { samples: [number, number, number][] }>
  const fromWall = performance.timeOrigin + listeningAt
  const health: Health = {}
  for (const [path, { samples }] of Object.entries(raw)) {
    const after = samples.filter(([at]) => at >= fromWall)
    const sorted = after.map(([, ms]) => ms).sort((a, b) => a - b)
    health[path] = {
      polls: sorted.length,
      notOk: after.filter(([, , ok]) => ok === 0).length,
      maxMs: sorted.at(-1) ?? null,
      p99Ms: sorted[Math.max(0, Math.ceil(0.99 * sorted.length) - 1)] ?? null,
      over100: sorted.filter((ms) => ms > 100).length,
    }
  }
  const missing = got.reduce((n, s) => n + (total - s.size), 0)
  const counters = (await (await fetch(`http://127.0.0.1:${port}/readyz`)).json()) as { counters?: Record<string, number>; feed?: Record<string, number>; eventLoop?: { delayMaxMs: number } }
  for (const c of fleet) c.close()
  await stop(push)
  await stop(bridge)
  const result = {
    date: new Date().toISOString(),
    node: process.version,
    settings: { clients, rate, seconds, killAtMs, restartMs },
    publisher: published.stdout.trim().split('\n').at(-1),
    downMs: Math.round(listeningAt - killedAt),
    everyMessageEverywhereMsAfterListening: everything() ? Math.round(allAt - listeningAt) : null,
    missing,
    duplicates,
    recoveredResumes: recovered,
    gapsReported: gaps,
    health,
    /** The new push process's own measure: the longest its event loop was late, since it started. */
    eventLoopDelayMaxMs: counters.eventLoop?.delayMaxMs ?? null,
    push: { counters: counters.counters, feed: counters.feed },
  }
  const lines = [
    '',
    `resume storm: kill -9 of push with ${clients} clients at ${rate} msg/s, restarted after ${restartMs} ms`,
    `  down ${result.downMs} ms; every client had every message ${result.everyMessageEverywhereMsAfterListening ?? '(never)'} ms after the new process listened`,
    `  missing ${missing}, duplicates ${duplicates}, resumes recovered ${recovered}, gaps reported ${gaps}`,
    `  new push process's event loop: at most ${result.eventLoopDelayMaxMs} ms late (monitorEventLoopDelay, since it started)`,
    ...Object.entries(health).map(([path, h]) => `  new push ${path} every 50 ms: slowest ${h.maxMs?.toFixed(1)} ms, p99 ${h.p99Ms?.toFixed(1)} ms, ${h.over100} of ${h.polls} over 100 ms, ${h.notOk} not 200`),
    '',
  ]
  process.stdout.write(lines.join('\n'))
  const out = here('results/')
  mkdirSync(out, { recursive: true })
  const file = join(out, `push-storm-${result.date.slice(0, 19).replace(/:/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(result, null, 2) + '\n')
  process.stdout.write(`Results written to ${file}\n`)
  rmSync(dir, { recursive: true, force: true })
}

// Ctrl-C or a kill: the processes started are stopped before going.
await runBench(main)
