/**
 * WebSocket push: forkyard's bridge + push processes against one plain `ws` process, side by side.
 *
 *   npx tsc -p tsconfig.json
 *   node --import tsx bench/push.ts [--clients 1000] [--messages 2000] [--rate 500]
 *       [--max-messages 500] [--window 1000] [--rounds 3]
 *       [--only forkyard,single] [--variants rate,max]     (subsets, for a quicker look)
 *
 * C WebSocket clients, all in this process, subscribe to one channel; M messages {t, s, i} are then
 * generated at R per second: s is when message i was due on a fixed schedule, t the sender's wall
 * clock just before it actually sent it (ms, fractional).
 *   A. forkyard: a separate publisher process (bench/push-publisher.mjs, standing for a prefork
 *      worker) calls publish(); the bridge acknowledges, numbers and forwards each message over
 *      ZeroMQ to the push process, which writes it to every subscribed socket.
 *   B. single process (bench/ws-single.mjs): one `ws` WebSocketServer that generates the messages
 *      itself and writes them to its sockets. No second hop, no acknowledgement: the limit case,
 *      what fan-out alone costs in Node. forkyard pays two extra hops (publisher -> bridge -> push)
 *      for publishing from any worker with acknowledgement, ordering and resume; this shows the price.
 * For each, per delivered message:
 *   - latency = receive wall clock - t, as p50, p99, max. All processes are on one machine and read
 *     the same clock (performance.timeOrigin + performance.now()), so no clock sync is needed.
 *   - latency from schedule = receive - s. The two differ when a generator cannot keep its
 *     schedule: the single process generates in the event loop that also does the fan-out, so
 *     when the fan-out saturates its core it falls behind and sends later, and the time waited
 *     is invisible to latency from t (coordinated omission). forkyard's publisher is another
 *     process and keeps the schedule; its messages wait in the push process's queue instead.
 *   - delivered messages per second across all clients = deliveries / (last - first receive);
 *   - missing deliveries (C x M minus the distinct (client, i) received; must be 0 for forkyard,
 *     which promises no silent loss), duplicates and out-of-order deliveries.
 * Then a "max" variant: no rate limit (forkyard's publisher keeps up to --window publishes in
 * flight, as fast as acknowledgements come back; the single process sends 32 messages per event
 * loop turn, as the push process takes them from the bridge) with --max-messages messages, for
 * delivered messages per second.
 *
 * The four runs (forkyard and single, rate and max) go one after the other, each with a fresh
 * server and freshly connected clients (batches of 100, all subscribed before the first message),
 * --rounds times over (default 3, interleaved); each table column is the configuration's median
 * round by throughput, whole, as runs here vary by 10-20% from one to the next.
 * The machine has few cores and the clients share them with the servers, in both cases alike: the
 * CPU each process used is reported (percent of one core over the run) to show the bottleneck, and
 * so is the CPU other programs used meanwhile, which disturbs the numbers (each run first waits up
 * to 2 minutes for an idle machine, and the report warns about disturbed runs). For
 * forkyard, the push process's /readyz is polled during the run: its readiness is its own heartbeat
 * through the bridge, which queues behind the messages.
 * Note: at the defaults (1000 clients x 500/s = 500,000 frames/s) both sides are far past what a
 * 2-core machine delivers (~75-85k frames/s, the clients and the server each using a whole core):
 * the rate variant then measures an overload, where latency is queueing (compare it from schedule).
 * Under capacity, e.g. --rate 50, the latencies compare the paths themselves.
 * No warm-up run: both servers start cold, alike. The clients are the same code in both cases, so
 * their own cost (and lag, when this process saturates a core) is in both measurements.
 *
 * Prints a table and the ratios forkyard / single, and writes bench/results/push-<date>.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { freePort, hasExited, httpOk, positiveInt, run, sleep, startLogged, stop, stopAll, waitUntil, type Proc } from './lib/proc.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const FORKYARD = here('../dist/bin/forkyard.js')
const PUBLISHER = here('push-publisher.mjs')
const SINGLE = here('ws-single.mjs')
const CHANNEL = 'bench'
// Connections opened at once; the next batch starts when the whole batch is open.
const CONNECT_BATCH = 100
// After the last delivery, how long nothing new must arrive before the run is declared over.
const QUIET_MS = 3000
// /proc/<pid>/stat counts CPU time in clock ticks: USER_HZ, 100 on every Linux Node supports.
const TICK_MS = 10
// The push process's /readyz is polled this often during a run: its readiness is its heartbeat
// coming back through the bridge, in the same queue as the messages.
const READY_POLL_MS = 1000
const READY_TIMEOUT_MS = 3000
// Before each run, wait up to IDLE_WAIT_MS for the machine to be idle.
const IDLE_BUSY_PERCENT = 20
const IDLE_WAIT_MS = 120_000
// Other programs' CPU during a run above which the report warns. A rough check: the machine's
// counters are sampled at each tick while per-process times are exact, and the two were seen to
// differ by up to ~20% of a core on a quiet machine; another program at work shows well above.
const OTHER_CPU_WARN_PERCENT = 25
const OTHER_CPU_WARN_MS = 500

const { values } = parseArgs({
  options: {
    clients: { type: 'string', default: '1000' },
    messages: { type: 'string', default: '2000' },
    rate: { type: 'string', default: '500' },
    'max-messages': { type: 'string', default: '500' },
    window: { type: 'string', default: '1000' },
    // Rounds over every configuration: runs on this machine vary by 10-20% from one to the next.
    rounds: { type: 'string', default: '3' },
    // For a quicker look at one side or one variant: comma-separated subsets.
    only: { type: 'string', default: 'forkyard,single' },
    variants: { type: 'string', default: 'rate,max' },
  },
})

function subset<T extends string>(name: string, raw: string, all: readonly T[]): T[] {
  const chosen = raw.split(',').map((s) => s.trim())
  const bad = chosen.filter((c) => !(all as readonly string[]).includes(c))
  if (bad.length > 0 || chosen.length === 0) throw new Error(`--${name}: expected some of ${all.join(',')}, got ${JSON.stringify(raw)}`)
  return all.filter((a) => chosen.includes(a))
}
const settings = {
  clients: positiveInt('clients', values.clients),
  messages: positiveInt('messages', values.messages),
  rate: positiveInt('rate', values.rate),
  maxMessages: positiveInt('max-messages', values['max-messages']),
  window: positiveInt('window', values.window),
  rounds: positiveInt('rounds', values.rounds),
  systems: subset('only', values.only, ['forkyard', 'single'] as const),
  variants: subset('variants', values.variants, ['rate', 'max'] as const),
}

type System = 'forkyard' | 'single'
type Variant = 'rate' | 'max'

interface Latency {
  p50: number
  p99: number
  max: number
  min: number
  mean: number
}

interface RunResult {
  system: System
  variant: Variant
  round: number
  clients: number
  messages: number
  /** Messages per second asked for; 0 = unlimited. */
  rate: number
  expected: number
  delivered: number
  missing: number
  duplicates: number
  outOfOrder: number
  /** Frames other than the subscription's messages (a "reset" would be one): expected 0. */
  otherFrames: number
  /** Clients whose connection closed during the run: expected 0. */
  closedEarly: number
  latencyMs: Latency | null
  /** Receive - when the message was due (s): includes the time the generator fell behind its
   * schedule, which latencyMs cannot see (coordinated omission). Null at unlimited rate. */
  scheduleLatencyMs: Latency | null
  /** How much later than scheduled the generator sent its last message (rate variant). */
  generatorLagMs: number | null
  deliveredPerSec: number | null
  /** First to last receive. */
  receiveSpanMs: number | null
  /** How long the generator took to send (or, for forkyard, have acknowledged) every message. */
  sendMs: number
  failedPublishes: number
  /** CPU used during the run, in percent of one core, per process. */
  cpuPercent: Record<string, number | null>
  /** CPU used during the run by processes other than the bench's, in percent of one core: well
   * above OTHER_CPU_WARN_PERCENT means another program shared the cores and disturbed the numbers. */
  otherCpuPercent: number | null
  otherCpuMs: number | null
  /** /readyz polled every READY_POLL_MS during the run (forkyard only). */
  readiness: Readiness | null
  /** The push process's /readyz counters after the run (forkyard only). */
  server: Record<string, unknown> | null
}

interface Generated {
  sendMs: number
  failed: number
  /** CPU time of processes started for the run and gone by its end (the publisher), by name. */
  cpuMs: Record<string, number>
  /** Their whole CPU time, start-up included (for otherCpuPercent). */
  cpuTotalMs: number
}

/** What /readyz of the push process said during a run. */
interface Readiness {
  polls: number
  /** Answers other than 200. */
  notReady: number
  /** No answer within READY_TIMEOUT_MS (this process, busy with the clients, may be the slow one). */
  unanswered: number
  /** The largest heartbeatLagMs seen: how long its own heartbeat took through the bridge. */
  maxHeartbeatLagMs: number | null
}

/** What a server under test offers the bench. */
interface Target {
  system: System
  url: string
  /** Long-running processes whose CPU time is measured, by name. */
  pids: Record<string, number>
  /** Sends the messages; resolves when the generator is done. */
  generate: (count: number, rate: number) => Promise<Generated>
  counters: () => Promise<Record<string, unknown> | null>
  /** Starts polling the server's readiness during a run (forkyard only); the returned function stops it. */
  watchReadiness: (() => () => Promise<Readiness>) | null
  stop: () => Promise<void>
}

function wallMs(): number {
  return performance.timeOrigin + performance.now()
}

/** The parent's environment without anything that would change how a process under test runs. */
function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) {
    if (!k.startsWith('FORKYARD_') && k !== 'NODE_OPTIONS') env[k] = v
  }
  return { ...env, ...extra }
}

function cpuMsOf(pid: number): number | null {
  try {
    // Fields after the ")" closing the command name: state is the first, utime the 12th, stime the 13th.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
    return (Number(fields[11]) + Number(fields[12])) * TICK_MS
  } catch {
    return null
  }
}

/**
 * CPU time the machine spent busy, from the first line of /proc/stat: user, nice, system, irq and
 * softirq. The interrupt columns count because without CONFIG_IRQ_TIME_ACCOUNTING (as on the
 * machine this was written on) the loopback traffic's softirq ticks are also charged to the
 * process that was running; with it, they are charged to no process and show up as "other".
 */
function machineBusyMs(): number | null {
  try {
    const [, user, nice, system, , , irq, softirq] = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').split(/\s+/).map(Number)
    const busy = [user, nice, system, irq, softirq].reduce<number>((a, b) => a + (b ?? NaN), 0)
    return Number.isFinite(busy) ? busy * TICK_MS : null
  } catch {
    return null
  }
}

/**
 * Waits, up to IDLE_WAIT_MS, until the machine is idle (less than IDLE_BUSY_PERCENT of a core busy
 * over a second): on a shared machine another program's load would disturb the run.
 */
async function waitForIdle(): Promise<void> {
  const deadline = Date.now() + IDLE_WAIT_MS
  let said = false
  while (Date.now() < deadline) {
    const before = machineBusyMs()
    await sleep(1000)
    const after = machineBusyMs()
    if (before === null || after === null || (after - before) / 10 < IDLE_BUSY_PERCENT) return
    if (!said) process.stderr.write(`  waiting for the machine to be idle (${Math.round((after - before) / 10)}% of a core busy)\n`)
    said = true
  }
  process.stderr.write('  the machine stayed busy: measuring anyway\n')
}

async function waitLog(proc: Proc, log: string, text: string): Promise<void> {
  await waitUntil(`${JSON.stringify(text)} in ${log}`, 100, 100, () => {
    if (hasExited(proc)) throw new Error(`The process exited during startup; see ${log}`)
    return readFileSync(log, 'utf8').includes(text)
  })
}

async function startForkyard(dir: string): Promise<Target> {
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
  const stopBoth = async (): Promise<void> => {
    if (push !== null) await stop(push)
    await stop(bridge)
  }
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
  } catch (err) {
    await stopBoth()
    throw err
  }
  return {
    system: 'forkyard',
    url: `ws://127.0.0.1:${port}/ws`,
    pids: { push: push.pid, bridge: bridge.pid },
    generate: async (count, rate) => {
      const timeoutMs = 60_000 + (rate > 0 ? (count / rate) * 1000 : 0)
      const r = await run(process.execPath, [PUBLISHER], timeoutMs, { ...env, CHANNEL, COUNT: String(count), RATE: String(rate), WINDOW: String(settings.window) })
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
    counters: async () => {
      const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(5000) })
      const body = (await res.json()) as Record<string, unknown>
      return { counters: body.counters, feed: body.feed, bridge: body.bridge }
    },
    stop: stopBoth,
  }
}

async function startSingle(dir: string): Promise<Target> {
  const port = await freePort()
  const log = join(dir, 'single.log')
  const proc = startLogged(process.execPath, [SINGLE], cleanEnv({ PORT: String(port) }), log)
  try {
    await waitLog(proc, log, 'ready')
    await waitUntil('single /healthz', 100, 100, () => httpOk(`http://127.0.0.1:${port}/healthz`))
  } catch (err) {
    await stop(proc)
    throw err
  }
  return {
    system: 'single',
    url: `ws://127.0.0.1:${port}/ws`,
    pids: { server: proc.pid },
    generate: async (count, rate) => {
      const timeoutMs = 60_000 + (rate > 0 ? (count / rate) * 1000 : 0)
      const res = await fetch(`http://127.0.0.1:${port}/run?channel=${CHANNEL}&count=${count}&rate=${rate}`, { signal: AbortSignal.timeout(timeoutMs) })
      const done = (await res.json()) as { sendMs: number; failed: number }
      return { sendMs: done.sendMs, failed: done.failed, cpuMs: {}, cpuTotalMs: 0 }
    },
    counters: () => Promise.resolve(null),
    watchReadiness: null,
    stop: () => stop(proc),
  }
}

type FleetSummary = Pick<
  RunResult,
  'expected' | 'delivered' | 'missing' | 'duplicates' | 'outOfOrder' | 'otherFrames' | 'closedEarly' | 'latencyMs' | 'scheduleLatencyMs' | 'deliveredPerSec' | 'receiveSpanMs'
>

/** The C clients of one run and what they received. */
class Fleet {
  private readonly sockets: WebSocket[] = []
  private subscribed = 0
  private closedEarly = 0
  private measuring = false
  // Per client: which message numbers arrived, and the last one (for order).
  private seen: Uint8Array[] = []
  private lastIndex = new Int32Array(0)
  private latencies = new Float64Array(0)
  private fromSchedule = new Float64Array(0)
  private scheduled = 0
  private delivered = 0
  private duplicates = 0
  private outOfOrder = 0
  private otherFrames = 0
  private firstReceive = Infinity
  private lastReceive = -Infinity

  constructor(
    private readonly url: string,
    private readonly count: number,
  ) {}

  /** Opens the connections in batches, then subscribes every client and waits for each answer. */
  async connect(): Promise<void> {
    for (let start = 0; start < this.count; start += CONNECT_BATCH) {
      const opened: Promise<void>[] = []
      for (let k = start; k < Math.min(start + CONNECT_BATCH, this.count); k++) opened.push(this.open(k))
      await withTimeout(Promise.all(opened), 30_000, `${opened.length} connections to ${this.url}`)
    }
    for (const ws of this.sockets) ws.send(JSON.stringify({ type: 'subscribe', channel: CHANNEL }))
    await waitUntil(`${this.count} clients subscribed`, 600, 50, () => this.subscribed === this.count)
  }

  private open(k: number): Promise<void> {
    const ws = new WebSocket(this.url, { perMessageDeflate: false })
    this.sockets.push(ws)
    ws.on('message', (raw) => this.onFrame(k, raw))
    ws.on('close', () => {
      if (this.measuring) this.closedEarly++
    })
    return new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve())
      // Kept after open too: an 'error' without a listener would crash the bench.
      ws.on('error', reject)
    })
  }

  /** Prepares the counters for `messages` messages; frames before this call are not counted. */
  expect(messages: number): void {
    this.seen = Array.from({ length: this.count }, () => new Uint8Array(messages))
    this.lastIndex = new Int32Array(this.count).fill(-1)
    this.latencies = new Float64Array(this.count * messages)
    this.fromSchedule = new Float64Array(this.count * messages)
    this.measuring = true
  }

  private onFrame(k: number, raw: WebSocket.RawData): void {
    // The clock is read first: parsing is the client's cost, not the server's.
    const now = wallMs()
    const m = JSON.parse(raw.toString()) as { type?: string; channel?: string; data?: { t?: number; s?: number; i?: number } }
    if (m.type === 'subscribed') {
      this.subscribed++
      return
    }
    if (!this.measuring) return
    const seen = this.seen[k]
    const i = m.data?.i
    const t = m.data?.t
    if (m.type !== 'message' || m.channel !== CHANNEL || seen === undefined || typeof i !== 'number' || typeof t !== 'number' || i < 0 || i >= seen.length) {
      this.otherFrames++
      return
    }
    if (seen[i] === 1) {
      this.duplicates++
      return
    }
    seen[i] = 1
    if (i < (this.lastIndex[k] ?? -1)) this.outOfOrder++
    this.lastIndex[k] = i
    this.latencies[this.delivered++] = now - t
    if (typeof m.data?.s === 'number') this.fromSchedule[this.scheduled++] = now - m.data.s
    if (now < this.firstReceive) this.firstReceive = now
    this.lastReceive = now
  }

  get lastReceiveAt(): number | null {
    return this.delivered === 0 ? null : this.lastReceive
  }

  /** Resolves once every message reached every client, or nothing new arrived for QUIET_MS. */
  async settle(maxMs: number): Promise<void> {
    const expected = this.latencies.length
    let lastCount = -1
    let lastChange = Date.now()
    const deadline = Date.now() + maxMs
    while (this.delivered < expected && Date.now() < deadline) {
      if (this.delivered !== lastCount) {
        lastCount = this.delivered
        lastChange = Date.now()
      } else if (Date.now() - lastChange > QUIET_MS) {
        return
      }
      await sleep(50)
    }
  }

  summary(): FleetSummary {
    const n = this.delivered
    const span = n > 1 ? this.lastReceive - this.firstReceive : null
    return {
      expected: this.latencies.length,
      delivered: n,
      missing: this.latencies.length - n,
      duplicates: this.duplicates,
      outOfOrder: this.outOfOrder,
      otherFrames: this.otherFrames,
      closedEarly: this.closedEarly,
      latencyMs: distribution(this.latencies.subarray(0, n)),
      scheduleLatencyMs: distribution(this.fromSchedule.subarray(0, this.scheduled)),
      deliveredPerSec: span === null || span <= 0 ? null : n / (span / 1000),
      receiveSpanMs: span,
    }
  }

  close(): void {
    this.measuring = false
    for (const ws of this.sockets) ws.terminate()
  }
}

/** Percentiles (nearest rank) of the values, sorted in place; null when there are none. */
function distribution(values: Float64Array): Latency | null {
  const n = values.length
  if (n === 0) return null
  const sorted = values.sort()
  const at = (p: number): number => sorted[Math.max(0, Math.ceil(p * n) - 1)] ?? NaN
  let sum = 0
  for (const v of sorted) sum += v
  return { p50: at(0.5), p99: at(0.99), max: at(1), min: at(0), mean: sum / n }
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  const timeout = new AbortController()
  try {
    return await Promise.race([
      p,
      sleep(ms, undefined, { signal: timeout.signal }).then(() => {
        throw new Error(`Timed out after ${ms} ms: ${what}`)
      }),
    ])
  } finally {
    timeout.abort()
  }
}

/** CPU times at one moment: this process (the clients), the target's processes, the machine. */
interface CpuSnapshot {
  self: NodeJS.CpuUsage
  procs: Record<string, number | null>
  machineMs: number | null
}

function cpuSnapshot(pids: Record<string, number>): CpuSnapshot {
  return {
    self: process.cpuUsage(),
    procs: Object.fromEntries(Object.entries(pids).map(([name, pid]) => [name, cpuMsOf(pid)])),
    machineMs: machineBusyMs(),
  }
}

/**
 * CPU used since `before`, in percent of one core over runMs (first message sent to last one
 * received), per process; `gone` adds the processes that ran during the run only (the publisher).
 * "Other" is the machine's busy time minus all of ours, over the whole window up to now.
 */
function cpuSince(before: CpuSnapshot, pids: Record<string, number>, gone: Generated, runMs: number, windowMs: number): Pick<RunResult, 'cpuPercent' | 'otherCpuPercent' | 'otherCpuMs'> {
  const percent = (ms: number | null, overMs: number): number | null => (ms === null ? null : Math.round((1000 * ms) / Math.max(1, overMs)) / 10)
  const self = process.cpuUsage(before.self)
  const selfMs = (self.user + self.system) / 1000
  const cpuPercent: Record<string, number | null> = { clients: percent(selfMs, runMs) }
  let oursMs: number | null = selfMs + gone.cpuTotalMs
  for (const [name, pid] of Object.entries(pids)) {
    const start = before.procs[name] ?? null
    const end = cpuMsOf(pid)
    const used = start === null || end === null ? null : end - start
    cpuPercent[name] = percent(used, runMs)
    oursMs = oursMs === null || used === null ? null : oursMs + used
  }
  for (const [name, ms] of Object.entries(gone.cpuMs)) cpuPercent[name] = percent(ms, runMs)
  const machineMs = machineBusyMs()
  const otherCpuMs = before.machineMs === null || machineMs === null || oursMs === null ? null : Math.max(0, machineMs - before.machineMs - oursMs)
  return { cpuPercent, otherCpuMs, otherCpuPercent: percent(otherCpuMs, windowMs) }
}

/** One run: a fresh server, C clients connected and subscribed, the messages, the numbers. */
async function measure(start: (dir: string) => Promise<Target>, variant: Variant, round: number): Promise<RunResult> {
  const messages = variant === 'rate' ? settings.messages : settings.maxMessages
  const rate = variant === 'rate' ? settings.rate : 0
  const dir = mkdtempSync(join(tmpdir(), 'forkyard-bench-push-'))
  let target: Target | null = null
  let fleet: Fleet | null = null
  let stopWatching: (() => Promise<Readiness>) | null = null
  let ok = false
  try {
    await waitForIdle()
    target = await start(dir)
    process.stderr.write(`round ${round}/${settings.rounds}, ${target.system}, ${variant}: connecting ${settings.clients} clients\n`)
    fleet = new Fleet(target.url, settings.clients)
    await fleet.connect()
    // Let the connection burst's garbage and timers settle before the clock starts.
    await sleep(500)
    fleet.expect(messages)
    process.stderr.write(`  sending ${messages} messages${rate > 0 ? ` at ${rate}/s` : ', unlimited rate'}\n`)
    const cpuBefore = cpuSnapshot(target.pids)
    const startedAt = wallMs()
    stopWatching = target.watchReadiness?.() ?? null
    const sent = await target.generate(messages, rate)
    await fleet.settle(120_000)
    const readiness = (await stopWatching?.()) ?? null
    stopWatching = null
    // After the last receive, while waiting out QUIET_MS for missing messages, nothing runs.
    const cpu = cpuSince(cpuBefore, target.pids, sent, (fleet.lastReceiveAt ?? wallMs()) - startedAt, wallMs() - startedAt)
    const result: RunResult = {
      system: target.system,
      variant,
      round,
      clients: settings.clients,
      messages,
      rate,
      ...fleet.summary(),
      sendMs: sent.sendMs,
      generatorLagMs: rate > 0 ? sent.sendMs - ((messages - 1) * 1000) / rate : null,
      failedPublishes: sent.failed,
      ...cpu,
      readiness,
      server: await target.counters(),
    }
    process.stderr.write(
      `  delivered ${result.delivered}/${result.expected}, p50 ${fmt(result.latencyMs?.p50)} ms, p99 ${fmt(result.latencyMs?.p99)} ms, ${fmt(result.deliveredPerSec, 0)} msg/s\n`,
    )
    ok = true
    return result
  } finally {
    await stopWatching?.()
    fleet?.close()
    await target?.stop()
    if (ok) rmSync(dir, { recursive: true, force: true })
    else process.stderr.write(`  failed: kept ${dir} (logs) for inspection\n`)
  }
}

function fmt(v: number | null | undefined, digits = 2): string {
  if (v === null || v === undefined || !Number.isFinite(v)) return '-'
  return v.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits })
}

function ratio(a: number | null | undefined, b: number | null | undefined): number | null {
  return a === null || a === undefined || b === null || b === undefined || b === 0 ? null : a / b
}

/** A configuration over its rounds: the median round by throughput, whole, so its numbers belong together. */
interface Summary extends RunResult {
  rounds: number
  deliveredPerSecMin: number | null
  deliveredPerSecMax: number | null
  /** Over every round, not only the median one: must be 0 for forkyard. */
  missingAllRounds: number
}

function summarize(runs: RunResult[]): Summary[] {
  const out: Summary[] = []
  for (const variant of settings.variants) {
    for (const system of settings.systems) {
      const mine = runs.filter((r) => r.system === system && r.variant === variant)
      const sorted = [...mine].sort((a, b) => (a.deliveredPerSec ?? 0) - (b.deliveredPerSec ?? 0))
      const median = sorted[Math.floor((sorted.length - 1) / 2)]
      if (median === undefined) continue
      out.push({
        ...median,
        rounds: mine.length,
        deliveredPerSecMin: sorted[0]?.deliveredPerSec ?? null,
        deliveredPerSecMax: sorted.at(-1)?.deliveredPerSec ?? null,
        missingAllRounds: mine.reduce((n, r) => n + r.missing, 0),
      })
    }
  }
  return out
}

function report(runs: Summary[], all: RunResult[]): { text: string; ratios: Record<string, number | null> } {
  const lines: string[] = []
  const ratios: Record<string, number | null> = {}
  const row = (label: string, f: string, s: string, r = ''): void => void lines.push(`  ${label.padEnd(28)}${f.padStart(17)}${s.padStart(17)}${r.padStart(17)}`)
  lines.push('', `push: ${settings.clients} WebSocket clients on one channel, ${availableParallelism()} CPUs, node ${process.version}`)
  lines.push(`each column: the median of ${settings.rounds} round(s) by throughput`)
  for (const variant of settings.variants) {
    const f = runs.find((r) => r.system === 'forkyard' && r.variant === variant)
    const s = runs.find((r) => r.system === 'single' && r.variant === variant)
    const any = f ?? s
    if (any === undefined) continue
    lines.push('', variant === 'rate' ? `${any.messages} messages at ${any.rate}/s` : `${any.messages} messages, unlimited rate (forkyard: up to ${settings.window} publishes in flight)`)
    row('', 'forkyard', 'single', 'forkyard/single')
    /** A row of one number per system, with their ratio saved under `key` when given. */
    const compare = (label: string, pick: (r: Summary) => number | null | undefined, digits: number, key: string | null): void => {
      const r = ratio(f === undefined ? null : pick(f), s === undefined ? null : pick(s))
      if (key !== null) ratios[key] = r
      row(label, fmt(f === undefined ? null : pick(f), digits), fmt(s === undefined ? null : pick(s), digits), key === null ? '' : fmt(r))
    }
    const text = (label: string, pick: (r: Summary) => string): void => row(label, f === undefined ? '-' : pick(f), s === undefined ? '-' : pick(s))
    for (const p of ['p50', 'p99', 'max'] as const) {
      // Unlimited, the latencies are mostly time spent queued and follow from how each generator
      // is paced (see the note below): not a comparison, so no ratio.
      compare(`latency ${p} (ms)`, (r) => r.latencyMs?.[p], 2, p === 'max' || variant === 'max' ? null : `${variant}.latency.${p}`)
    }
    if (variant === 'rate') {
      for (const p of ['p50', 'p99', 'max'] as const) {
        compare(`  from schedule ${p} (ms)`, (r) => r.scheduleLatencyMs?.[p], 2, p === 'max' ? null : `${variant}.scheduleLatency.${p}`)
      }
    }
    compare('delivered msg/s', (r) => r.deliveredPerSec, 0, `${variant}.throughput`)
    if (settings.rounds > 1) text('  range over the rounds', (r) => `${fmt(r.deliveredPerSecMin, 0)}-${fmt(r.deliveredPerSecMax, 0)}`)
    text('delivered / expected', (r) => `${r.delivered}/${r.expected}`)
    text('missing (all rounds)', (r) => String(r.missingAllRounds))
    text('duplicates, out of order', (r) => `${r.duplicates}, ${r.outOfOrder}`)
    compare('generator time (ms)', (r) => r.sendMs, 0, null)
    if (variant === 'rate') compare('  behind schedule (ms)', (r) => r.generatorLagMs, 0, null)
    for (const r of [f, s]) {
      if (r === undefined) continue
      const cpu = Object.entries(r.cpuPercent).map(([k, v]) => `${k} ${v === null ? '-' : Math.round(v)}`)
      lines.push(`  CPU % of a core, ${r.system}: ${cpu.join(', ')}; other programs ${r.otherCpuPercent === null ? '-' : Math.round(r.otherCpuPercent)}`)
    }
    for (const r of [f, s]) {
      const ready = r?.readiness
      if (ready === null || ready === undefined) continue
      lines.push(
        `  push /readyz: not ready in ${ready.notReady} of ${ready.polls} polls (${ready.unanswered} unanswered); heartbeat lag seen up to ${fmt(ready.maxHeartbeatLagMs, 0)} ms`,
      )
    }
    if (variant === 'max') {
      lines.push(
        "  (latency here is mostly queueing: forkyard's publisher is paced by acknowledgements, which the bridge",
        '  gives before the push process has delivered, so messages pile up in front of the push process; the',
        '  single process generates 32 messages per event-loop turn, paced by its own socket writes.)',
      )
    }
    // Warnings from every round, not only the median ones shown.
    for (const r of all.filter((r) => r.variant === variant)) {
      const which = `${r.system}, round ${r.round}`
      if (r.closedEarly > 0 || r.otherFrames > 0 || r.failedPublishes > 0 || (r.latencyMs?.min ?? 0) < 0) {
        lines.push(`  ! ${which}: ${r.closedEarly} connections closed, ${r.otherFrames} other frames, ${r.failedPublishes} failed publishes, min latency ${fmt(r.latencyMs?.min)} ms`)
      }
      if ((r.otherCpuPercent ?? 0) > OTHER_CPU_WARN_PERCENT && (r.otherCpuMs ?? 0) > OTHER_CPU_WARN_MS) {
        lines.push(`  ! ${which}: other programs used ${Math.round(r.otherCpuPercent ?? 0)}% of a core during the run: the numbers are disturbed`)
      }
    }
  }
  lines.push('', 'Ratios forkyard / single (latency: lower is better for both; throughput: 1 = as fast as one process):')
  for (const [k, v] of Object.entries(ratios)) lines.push(`  ${k.padEnd(28)}${fmt(v).padStart(8)}`)
  return { text: lines.join('\n') + '\n', ratios }
}

async function main(): Promise<void> {
  const runs: RunResult[] = []
  // One after the other, never at the same time: on two cores they would measure each other.
  const starters = { forkyard: startForkyard, single: startSingle }
  // Rounds interleaved, so a slow drift of the machine's speed hits every configuration alike.
  for (let round = 1; round <= settings.rounds; round++) {
    for (const variant of settings.variants) {
      for (const system of settings.systems) runs.push(await measure(starters[system], variant, round))
    }
  }
  const summaries = summarize(runs)
  const { text, ratios } = report(summaries, runs)
  process.stdout.write(text)
  const date = new Date()
  const results = {
    date: date.toISOString(),
    machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? null, node: process.version },
    settings: { ...settings, channel: CHANNEL, connectBatch: CONNECT_BATCH, quietMs: QUIET_MS },
    summaries,
    ratios,
    runs,
  }
  const dir = here('results/')
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `push-${date.toISOString().slice(0, 19).replace(/:/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n')
  process.stdout.write(`\nResults written to ${file}\n`)
}

// Ctrl-C or a kill: stop the processes we started before going.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => void stopAll().finally(() => process.exit(130)))
}

try {
  await main()
} catch (err) {
  process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`)
  process.exitCode = 1
} finally {
  await stopAll()
}
