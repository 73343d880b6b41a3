/**
 * Cross-host fan-out (issue 14): the same WebSocket clients and publisher against
 *   A. redis: three hosts (network namespaces, test/helpers/netns.ts), each running the whole stack
 *      (`forkyard up`) with FORKYARD_ENGINE=redis://… on one redis-server in a fourth namespace;
 *      the clients spread evenly over the three hosts' nginx, the publisher on host 1;
 *   B. embedded: one host, the default engine (ZeroMQ bridge), every client on it;
 * in the same run, rounds interleaved, as ratios A / B.
 *
 *   flock /tmp/forkyard-bench.lock node --import tsx bench/cross-host.ts [--clients 300]
 *       [--rates 100,1000] [--seconds 10] [--rounds 2]
 *
 * Two loads: a paced one (100 msg/s: latency without queueing) and a high one (1000 msg/s x 300
 * clients = 300 000 deliveries/s offered, more than two cores deliver: delivered/s is then the
 * capacity, latency mostly queueing). The publisher (test/fixtures/multi-host-publisher.mjs, in
 * host 1's namespace) sends rate msg/s
 * for `seconds` s, each message stamped with Date.now(); the clients (the kit's browser client
 * over `ws`, test/fixtures/multi-host-clients.mjs, in the load balancer's namespace) record the
 * receive time. All processes read one clock (one machine), so latency = receive - stamp needs no
 * clock sync. delivered/s = deliveries / (last - first receive) of the measured window, after a
 * warm-up. Needs root (ip netns), nginx, supervisord, redis-server.
 *
 * What this cannot show: three hosts share this machine's cores (on real hosts each has its own, so
 * the Redis engine's cost per host is smaller than here), and the veth links have no latency of
 * their own (a real network adds its round trip to every hop through Redis).
 */
import { availableParallelism, cpus } from 'node:os'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { DB_ADDR, hostStack, makeNet, netnsUnavailable, startAgent, startPublisher, type Agent, type HostStack, type Net } from '../test/helpers/netns.js'
import { startRedis } from '../test/helpers/redis.js'
import { root, tempDir } from '../test/helpers/server.js'
import { machineCpuMs, positiveInt, runBench, sleep } from './lib/proc.js'

const args = process.argv.slice(2)
function arg(name: string, fallback: number): number {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? positiveInt(name, args[i + 1] ?? '') : fallback
}
function rates(): number[] {
  const i = args.indexOf('--rates')
  return i >= 0 ? (args[i + 1] ?? '').split(',').map((r) => positiveInt('rates', r)) : [100, 1000]
}
const settings = { clients: arg('clients', 300), rates: rates(), seconds: arg('seconds', 10), rounds: arg('rounds', 2) }
const CHANNEL = 'bench'

interface Measured {
  engine: 'redis' | 'embedded'
  rate: number
  hosts: number
  round: number
  published: number
  failed: number
  expected: number
  delivered: number
  deliveredPerSec: number
  latencyMs: { n: number; p50: number | null; p99: number | null; max: number | null }
  machineCpuBusy: number
}

const values = (engine: string): Record<string, string> => ({
  FORKYARD_ENGINE: engine,
  FORKYARD_APP: join(root, 'test/fixtures/multi-host-app.mjs'),
  FORKYARD_PUSH_CONN_RATE: '100000',
  FORKYARD_LOG_LEVEL: 'warn',
})

/** One load on stacks already up: clients opened, warm-up, the measured window, clients closed. */
async function measure(net: Net, agent: Agent, hosts: HostStack[], engine: Measured['engine'], rate: number, round: number): Promise<Measured> {
  try {
    // Clients spread evenly over the hosts, straight to each host's nginx.
    for (const [i, h] of hosts.entries()) {
      const n = Math.floor(settings.clients / hosts.length) + (i < settings.clients % hosts.length ? 1 : 0)
      const r = await agent.call<{ subscribed: number }>({ cmd: 'open', n, url: `ws://${h.addr}:8080/ws`, channel: CHANNEL, timeoutMs: 60_000 }, 90_000)
      if (r.subscribed !== n) throw new Error(`Expected ${n} clients subscribed on ${h.role}, got ${JSON.stringify(r)}`)
    }
    // Warm-up: one second of the same load, not counted.
    const warm = startPublisher(net, hosts[0]!, { channel: CHANNEL, count: rate, intervalMs: 1000 / rate })
    await warm.done
    await sleep(1000)
    await agent.call({ cmd: 'lat-reset' })
    const count = rate * settings.seconds
    const cpu0 = machineCpuMs()
    const pub = startPublisher(net, hosts[0]!, { channel: CHANNEL, count, intervalMs: 1000 / rate })
    const done = await pub.done
    const expected = done.acked * settings.clients
    let rep: { delivered: number; firstAt: number; lastAt: number; latency: Measured['latencyMs'] } = { delivered: 0, firstAt: 0, lastAt: 0, latency: { n: 0, p50: null, p99: null, max: null } }
    for (let i = 0; i < 60; i++) {
      rep = await agent.call({ cmd: 'report', latency: true })
      if (rep.delivered >= expected) break
      await sleep(500)
    }
    const cpu1 = machineCpuMs()
    const m: Measured = {
      engine,
      rate,
      hosts: hosts.length,
      round,
      published: done.acked,
      failed: done.failed,
      expected,
      delivered: rep.delivered,
      deliveredPerSec: rep.lastAt > rep.firstAt ? Math.round((rep.delivered * 1000) / (rep.lastAt - rep.firstAt)) : 0,
      latencyMs: rep.latency,
      machineCpuBusy: Math.round((100 * (cpu1.busy - cpu0.busy)) / Math.max(1, cpu1.total - cpu0.total)) / 100,
    }
    process.stdout.write(`${rate} msg/s, ${engine} (${hosts.length} host${hosts.length > 1 ? 's' : ''}), round ${round}: ${m.delivered}/${m.expected} delivered, ${m.deliveredPerSec}/s, p50 ${m.latencyMs.p50} ms, p99 ${m.latencyMs.p99} ms, max ${m.latencyMs.max} ms, machine CPU busy ${Math.round(m.machineCpuBusy * 100)}%\n`)
    return m
  } finally {
    await agent.call({ cmd: 'close' })
  }
}

/** Both loads on one configuration, brought up once for them. */
async function measureAll(net: Net, agent: Agent, hosts: HostStack[], engine: Measured['engine'], round: number): Promise<Measured[]> {
  await Promise.all(hosts.map((h) => h.up()))
  try {
    const out: Measured[] = []
    for (const rate of settings.rates) out.push(await measure(net, agent, hosts, engine, rate, round))
    return out
  } finally {
    for (const h of hosts) h.cli('down')
  }
}

function median(xs: number[]): number | null {
  const s = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b)
  if (s.length === 0) return null
  // Even count: the mean of the two middle values (with 2 rounds, not the lower one).
  const mid = s.length / 2
  return s.length % 2 === 1 ? s[Math.floor(mid)]! : (s[mid - 1]! + s[mid]!) / 2
}

async function main(): Promise<void> {
  const why = netnsUnavailable()
  if (why !== '') throw new Error(`cross-host bench needs network namespaces: ${why}`)
  const cleanups: (() => unknown)[] = []
  const ctx = { after: (fn: () => unknown) => void cleanups.push(fn) }
  try {
    const net = makeNet(ctx, 3)
    await startRedis(ctx as unknown as TestContext, { aof: false, bind: DB_ADDR, port: 6379, wrap: net.wrap('db') })
    const agent = startAgent(net, 'lb')
    const redisHosts = [1, 2, 3].map((i) => hostStack(net, tempDir('fy-bench-redis-'), i, values(`redis://${DB_ADDR}:6379/0`)))
    const embeddedHost = [hostStack(net, tempDir('fy-bench-embedded-'), 1, values('embedded'))]
    const runs: Measured[] = []
    for (let round = 1; round <= settings.rounds; round++) {
      // Alternating which goes first, so a drift of the machine's speed hits both alike.
      const order = round % 2 === 1 ? (['embedded', 'redis'] as const) : (['redis', 'embedded'] as const)
      for (const engine of order) runs.push(...(await measureAll(net, agent, engine === 'redis' ? redisHosts : embeddedHost, engine, round)))
    }
    const ratio = (a: number | null, b: number | null): number | null => (a === null || b === null || b === 0 ? null : Math.round((100 * a) / b) / 100)
    const summary: Record<string, Record<string, { deliveredPerSec: number | null; p50: number | null; p99: number | null; missing: number }>> = {}
    const ratios: Record<string, number | null> = {}
    process.stdout.write(`\nMedians over ${settings.rounds} rounds, ${settings.clients} clients, ${settings.seconds} s per run:\n`)
    for (const rate of settings.rates) {
      const of = (e: string): Measured[] => runs.filter((r) => r.engine === e && r.rate === rate)
      const pick = (e: string, f: (m: Measured) => number | null): number | null => median(of(e).map(f).filter((v): v is number => v !== null))
      const s: Record<string, { deliveredPerSec: number | null; p50: number | null; p99: number | null; missing: number }> = {}
      for (const e of ['redis', 'embedded']) s[e] = { deliveredPerSec: pick(e, (m) => m.deliveredPerSec), p50: pick(e, (m) => m.latencyMs.p50), p99: pick(e, (m) => m.latencyMs.p99), missing: of(e).reduce((n, r) => n + Math.max(0, r.expected - r.delivered), 0) }
      summary[`${rate} msg/s`] = s
      ratios[`${rate} msg/s: delivered/s redis 3 hosts / embedded 1 host`] = ratio(s.redis!.deliveredPerSec, s.embedded!.deliveredPerSec)
      ratios[`${rate} msg/s: p50 latency redis / embedded`] = ratio(s.redis!.p50, s.embedded!.p50)
      ratios[`${rate} msg/s: p99 latency redis / embedded`] = ratio(s.redis!.p99, s.embedded!.p99)
      for (const [e, v] of Object.entries(s)) process.stdout.write(`  ${String(rate).padStart(5)} msg/s ${e.padEnd(9)} ${String(v.deliveredPerSec).padStart(7)} delivered/s  p50 ${v.p50} ms  p99 ${v.p99} ms  missing ${v.missing}\n`)
    }
    for (const [k, v] of Object.entries(ratios)) process.stdout.write(`  ${k.padEnd(56)} ${v}\n`)
    const date = new Date()
    const dir = join(root, 'bench/results')
    mkdirSync(dir, { recursive: true })
    const file = join(dir, `cross-host-${date.toISOString().slice(0, 19).replace(/:/g, '-')}.json`)
    writeFileSync(file, JSON.stringify({ date: date.toISOString(), machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? null, node: process.version }, settings, summary, ratios, runs }, null, 2) + '\n')
    process.stdout.write(`\nResults written to ${file}\n`)
  } finally {
    for (const fn of cleanups.reverse()) {
      try {
        await fn()
      } catch (err) {
        process.stderr.write(`cleanup failed: ${(err as Error).message}\n`)
      }
    }
  }
}

await runBench(main)
