/**
 * WebSocket push: forkyard's bridge + push processes against one plain `ws` process, side by side.
 *
 *   npx tsc -p tsconfig.json
 *   node --import tsx bench/push.ts [--clients 1000] [--messages 2000] [--rate 500]
 *       [--max-messages 500] [--window 1000] [--rounds 3]
 *       [--only forkyard,single] [--variants rate,max]     (subsets, for a quicker look)
 *       [--direct]                                         (clients straight to the servers)
 *   (on a shared machine: flock /tmp/forkyard-bench.lock node --import tsx bench/push.ts ...)
 *
 * Both servers sit behind the same nginx, the kit's template (nginx/nginx.conf.template, rendered
 * by server/stack/nginx.ts) with its /ws location; nginx's CPU is reported with each. The code is
 * split: lib/push-targets.ts starts the servers (and nginx), lib/push-fleet.ts holds the clients,
 * lib/push-cpu.ts the CPU accounting. During forkyard's runs /healthz and /readyz of the push
 * process are polled every 50 ms from another process (bench/push-health-poller.mjs): the goal is
 * an answer within 100 ms even at overload.
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
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { cpuSince, cpuSnapshot, waitForIdle } from './lib/push-cpu.js'
import { CONNECT_BATCH, Fleet, QUIET_MS, wallMs, type FleetSummary } from './lib/push-fleet.js'
import { startForkyard, startSingle, watchHealth, type Health, type Readiness, type System, type Target, type TargetOptions } from './lib/push-targets.js'
import { positiveInt, runBench, sleep } from './lib/proc.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const CHANNEL = 'bench'
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
    // Clients straight to each server, without nginx in front.
    direct: { type: 'boolean', default: false },
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
  nginx: !values.direct,
}


type Variant = 'rate' | 'max'

interface RunResult extends FleetSummary {
  system: System
  variant: Variant
  round: number
  clients: number
  messages: number
  /** Messages per second asked for; 0 = unlimited. */
  rate: number
  /** How much later than scheduled the generator sent its last message (rate variant). */
  generatorLagMs: number | null
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
  /** /healthz and /readyz of the push process polled every 50 ms from another process (forkyard only). */
  health: Health | null
  /** The push process's /readyz counters after the run (forkyard only). */
  server: Record<string, unknown> | null
}

/** One run: a fresh server, C clients connected and subscribed, the messages, the numbers. */
async function measure(start: (dir: string, o: TargetOptions) => Promise<Target>, variant: Variant, round: number): Promise<RunResult> {
  const messages = variant === 'rate' ? settings.messages : settings.maxMessages
  const rate = variant === 'rate' ? settings.rate : 0
  const dir = mkdtempSync(join(tmpdir(), 'forkyard-bench-push-'))
  let target: Target | null = null
  let fleet: Fleet | null = null
  let stopWatching: (() => Promise<Readiness>) | null = null
  let stopHealth: (() => Promise<Health>) | null = null
  let ok = false
  try {
    await waitForIdle()
    target = await start(dir, { channel: CHANNEL, window: settings.window, nginx: settings.nginx })
    process.stderr.write(`round ${round}/${settings.rounds}, ${target.system}, ${variant}: connecting ${settings.clients} clients\n`)
    fleet = new Fleet(target.url, settings.clients, CHANNEL)
    await fleet.connect()
    // Let the connection burst's garbage and timers settle before the clock starts.
    await sleep(500)
    fleet.expect(messages)
    process.stderr.write(`  sending ${messages} messages${rate > 0 ? ` at ${rate}/s` : ', unlimited rate'}\n`)
    const cpuBefore = cpuSnapshot(target.pids)
    const startedAt = wallMs()
    stopWatching = target.watchReadiness?.() ?? null
    stopHealth = watchHealth(target.healthUrls)
    const sent = await target.generate(messages, rate)
    await fleet.settle(120_000)
    const readiness = (await stopWatching?.()) ?? null
    stopWatching = null
    const health = (await stopHealth?.()) ?? null
    stopHealth = null
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
      health,
      server: await target.counters(),
    }
    process.stderr.write(
      `  delivered ${result.delivered}/${result.expected}, p50 ${fmt(result.latencyMs?.p50)} ms, p99 ${fmt(result.latencyMs?.p99)} ms, ${fmt(result.deliveredPerSec, 0)} msg/s\n`,
    )
    ok = true
    return result
  } finally {
    await stopWatching?.()
    await stopHealth?.()
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
  lines.push('', `push: ${settings.clients} WebSocket clients on one channel, ${settings.nginx ? "through nginx (the kit's template)" : 'direct (no nginx)'}, ${availableParallelism()} CPUs, node ${process.version}`)
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
    for (const [path, h] of Object.entries(f?.health ?? {})) {
      lines.push(`  push ${path} every 50 ms: slowest ${fmt(h.maxMs, 1)} ms, p99 ${fmt(h.p99Ms, 1)} ms, ${h.over100} of ${h.polls} over 100 ms, ${h.notOk} not 200`)
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

// Ctrl-C or a kill: the processes started are stopped before going.
await runBench(main)
