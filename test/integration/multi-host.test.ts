/**
 * Issue 14's proof: three hosts on one machine (network namespaces joined by veth links, addresses
 * that exist only inside them), a fourth namespace running Debian's redis-server, each host running
 * the whole stack natively (`forkyard up`, what `make up` runs, in its own project directory with
 * its own .env and FORKYARD_ENGINE=redis://10.231.0.4:6379/0), nginx as the load balancer of the
 * README in a fifth. 300 of the kit's browser clients through the load balancer, a publisher at
 * 50 msg/s on host 1; then host 2 killed (every process, kill -9), host 2's link cut, a task's
 * runner and the singleton's host killed, Redis killed and restarted with and without its
 * append-only file, and one idempotency key published on two hosts. Every acknowledged message
 * reaches every client once and in order, or the client is told: never a silent gap.
 */
import assert from 'node:assert/strict'
import { existsSync, mkdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { checkDelivery, hostStack, logTail, makeNet, netnsUnavailable, startAgent, startBalancer, startPublisher, DB_ADDR, type Agent, type ClientReport, type HostStack, type Net, type PublisherRun } from '../helpers/netns.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { root, sleep, tempDir, until } from '../helpers/server.js'

const CLIENTS = 300
const CHANNEL = 'mh'
const RATE_MS = 20 // 50 msg/s

interface World {
  net: Net
  redis: RedisServer
  hosts: HostStack[]
  agent: Agent
  lb: { url: string; wsUrl: string; errorLog: string }
  shared: string
  acked: { offset: number; epoch: string }[]
  summary: string[]
}

async function setup(t: TestContext): Promise<World> {
  const net = makeNet(t, 3)
  const redis = await startRedis(t, { aof: true, bind: DB_ADDR, port: 6379, wrap: net.wrap('db') })
  const base = tempDir('fy-multi-')
  const shared = join(base, 'shared')
  mkdirSync(shared, { recursive: true })
  const values = {
    FORKYARD_ENGINE: `redis://${DB_ADDR}:6379/0`,
    FORKYARD_APP: join(root, 'test/fixtures/multi-host-app.mjs'),
    FORKYARD_PUSH_PING_INTERVAL: '1s',
    FORKYARD_PUSH_HEARTBEAT_STALE: '2s',
    FORKYARD_PUSH_CONN_RATE: '100000',
    FORKYARD_TASKS_CONCURRENCY: '4',
    // A dead host's task runs again, its singleton moves, after about this long.
    FORKYARD_TASKS_LEASE: '3s',
    FORKYARD_SINGLETON_LEASE: '3s',
  }
  const hosts = [1, 2, 3].map((i) => hostStack(net, base, i, values))
  await Promise.all(hosts.map((h) => h.up()))
  const lb = await startBalancer(net, [1, 2, 3], { readTimeout: '3s' })
  const agent = startAgent(net, 'lb')
  net.defer(() => agent.call({ cmd: 'close' }, 5000).catch(() => undefined))
  return { net, redis, hosts, agent, lb, shared, acked: [], summary: [] }
}

async function reports(w: World): Promise<ClientReport[]> {
  const r = await w.agent.call<{ clients: ClientReport[] }>({ cmd: 'report' }, 60_000)
  assert.ok(r.ok, `Expected the clients' report, got ${r.error}`)
  return r.clients
}

/** Publishes `count` messages at 50/s on host 1 while `during` runs; adds the acknowledged ones to w.acked. */
async function publishWhile(w: World, count: number, during: (pub: PublisherRun) => Promise<void>): Promise<PublisherRun> {
  const pub = startPublisher(w.net, w.hosts[0]!, { channel: CHANNEL, count, intervalMs: RATE_MS })
  await during(pub)
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<null>((resolve) => (timer = setTimeout(() => resolve(null), count * RATE_MS + 90_000)))
  // The timer is cleared: a pending one would hold the test process (and the test lock) open.
  const done = await Promise.race([pub.done, late]).finally(() => clearTimeout(timer))
  assert.ok(done !== null, `Expected the publisher to finish ${count} messages, it did not: ${pub.raw()}`)
  w.acked.push(...pub.acked)
  return pub
}

/** Waits until every client holds the last acknowledged message, then checks everything acknowledged so far. */
async function caughtUp(w: World, label: string, opts: { resets: boolean }): Promise<ClientReport[]> {
  const last = w.acked.at(-1)
  assert.ok(last !== undefined, `${label}: expected acknowledged messages, got none`)
  let reps: ClientReport[] = []
  try {
    await until(`${label}: every client at ${last.epoch}:${last.offset}`, async () => {
      reps = await reports(w)
      return reps.every((r) => r.last !== null && r.last.epoch === last.epoch && r.last.offset >= last.offset)
    }, 45_000, 1000)
  } catch (err) {
    const behind = reps.filter((r) => r.last?.epoch !== last.epoch || r.last.offset < last.offset)
    const where = (rs: ClientReport[]): string => JSON.stringify({ ...upstreamCounts(rs, w), ...Object.fromEntries([...new Set(rs.map((r) => r.state))].map((s) => [s, rs.filter((r) => r.state === s).length])) })
    process.stdout.write(`# ${label}: ${behind.length} clients behind (${where(behind)}), ${reps.length - behind.length} caught up (${where(reps.filter((r) => !behind.includes(r)))}), e.g. ${JSON.stringify(behind.slice(0, 3).map((r) => ({ state: r.state, closes: r.closes, last: r.last, upstreams: r.upstreams, gaps: r.gaps.slice(-2) })))}\nload balancer: ${lines(w.lb.errorLog).slice(-8).join('\n')}\n${w.hosts.map((h) => logTail(h)).join('\n')}\n`)
    throw err
  }
  const c = checkDelivery(reps, w.acked)
  const line = `${label}: ${w.acked.length} acknowledged so far, ${c.clients} clients, silent gaps ${c.missing}, duplicated ${c.dup}, out of order ${c.disorder}, announced gaps/resets ${c.gapsTold} (covering ${c.excused} client-messages), sent again on the wire and dropped by the client ${c.wireRepeats}`
  w.summary.push(line)
  process.stdout.write(`# ${line}\n`)
  assert.equal(c.missing, 0, `${label}: expected no acknowledged message silently missing, got ${c.missing}:\n${c.examples.join('\n')}`)
  assert.equal(c.dup + c.disorder, 0, `${label}: expected every message once and in order:\n${c.examples.join('\n')}`)
  if (!opts.resets) assert.equal(c.excused, 0, `${label}: expected 0 missing (no reset either), got ${c.excused} client-messages covered by resets`)
  return reps
}

function upstreamCounts(reps: ClientReport[], w: World): Record<string, number> {
  const out: Record<string, number> = {}
  for (const r of reps) {
    const up = r.upstreams.at(-1) ?? 'none'
    const host = w.hosts.find((h) => up.startsWith(`${h.addr}:`))?.role ?? up
    out[host] = (out[host] ?? 0) + 1
  }
  return out
}

/** Close codes and reasons the clients saw between two reports. */
function closeCounts(now: ClientReport[], before: ClientReport[]): Record<string, number> {
  const out: Record<string, number> = {}
  for (const [i, r] of now.entries()) {
    for (const [k, n] of Object.entries(r.closes)) {
      const d = n - (before[i]?.closes[k] ?? 0)
      if (d > 0) out[k] = (out[k] ?? 0) + d
    }
  }
  return out
}

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter((l) => l !== '') : []
}

interface Tick { ms: number; host: string; token: number }
function ticks(w: World): Tick[] {
  return lines(join(w.shared, 'ticks.log')).map((l) => l.split(' ')).map(([ms, host, token]) => ({ ms: Number(ms), host: host!, token: Number(token) }))
}

/** The singleton: one holder per fencing token, tokens rising; a tick with an older token than one already seen is stale. */
function singletonHistory(all: Tick[]): { holders: string[]; stale: number; staleMs: number; tokenHosts: Map<number, Set<string>> } {
  const tokenHosts = new Map<number, Set<string>>()
  const holders: string[] = []
  let max = -1
  let stale = 0
  let staleFrom = 0
  let staleMs = 0
  for (const k of all) {
    ;(tokenHosts.get(k.token) ?? tokenHosts.set(k.token, new Set()).get(k.token)!).add(k.host)
    if (k.token > max) {
      max = k.token
      staleFrom = k.ms
      holders.push(`${k.host}#${k.token}`)
    } else if (k.token < max) {
      stale++
      staleMs = Math.max(staleMs, k.ms - staleFrom)
    }
  }
  return { holders, stale, staleMs, tokenHosts }
}

test('three hosts, one Redis: 300 clients, 50 msg/s, kills, a cut link, Redis restarts: no silent gap', { timeout: 8 * 60_000 }, async (t) => {
  const why = netnsUnavailable()
  if (why !== '') return t.skip(why)
  const started = Date.now()
  const w = await setup(t)
  const [h1, h2, h3] = w.hosts as [HostStack, HostStack, HostStack]
  w.summary.push(`setup (namespaces, redis, 3 stacks up, load balancer): ${Date.now() - started} ms`)

  // 300 clients through the load balancer: round robin spreads them over the three hosts.
  const opened = await w.agent.call<{ subscribed: number }>({ cmd: 'open', n: CLIENTS, url: w.lb.wsUrl, channel: CHANNEL, wire: true, timeoutMs: 60_000 }, 90_000)
  assert.equal(opened.subscribed, CLIENTS, `Expected ${CLIENTS} clients subscribed through the load balancer, got ${JSON.stringify(opened)}`)
  const spread = upstreamCounts(await reports(w), w)
  w.summary.push(`clients per host: ${JSON.stringify(spread)}`)
  for (const h of w.hosts) assert.ok((spread[h.role] ?? 0) >= CLIENTS / 6, `Expected the clients spread over the 3 hosts, got ${JSON.stringify(spread)}`)

  await t.test('every client receives every message, in order, once', async () => {
    await publishWhile(w, 300, async () => undefined)
    await caughtUp(w, 'steady 50 msg/s', { resets: false })
  })

  await t.test('every process of host 2 killed: its clients resume on hosts 1 and 3, 0 missing, 0 duplicated', async () => {
    let killed: number[] = []
    const beforeReps = await reports(w)
    const before = upstreamCounts(beforeReps, w)
    await publishWhile(w, 400, async () => {
      await sleep(2000)
      killed = await h2.killAll()
    })
    const reps = await caughtUp(w, `host 2 killed (${killed.length} processes, kill -9)`, { resets: false })
    const after = upstreamCounts(reps, w)
    w.summary.push(`clients per host before ${JSON.stringify(before)}, after ${JSON.stringify(after)}; close codes seen ${JSON.stringify(closeCounts(reps, beforeReps))}`)
    assert.equal(after.h2 ?? 0, 0, `Expected no client left on the dead host 2, got ${JSON.stringify(after)}`)
    const down = h2.cli('down')
    assert.equal(down.status, 0, `Expected forkyard down on the killed host 2 to succeed: ${down.out}`)
    const t0 = Date.now()
    await h2.up()
    w.summary.push(`host 2 down + up after kill -9: ${Date.now() - t0} ms`)
  })

  await t.test("host 2's link cut for 5 s: its clients resume elsewhere, 0 missing, 0 duplicated", async () => {
    // Bring clients back onto host 2 first: new ones through the load balancer land there too
    // (its WebSocket upstream never marks a host failed: test/fixtures/multi-host-lb.conf says why).
    const more = await w.agent.call<{ subscribed: number }>({ cmd: 'open', n: 90, url: w.lb.wsUrl, channel: CHANNEL, wire: true, timeoutMs: 30_000 }, 60_000)
    assert.equal(more.subscribed, 90, `Expected 90 more clients subscribed, got ${JSON.stringify(more)}`)
    const beforeReps = await reports(w)
    const before = upstreamCounts(beforeReps, w)
    assert.ok((before.h2 ?? 0) >= 20, `Expected about a third of 90 new clients on the restarted host 2, got ${JSON.stringify(before)}`)
    await publishWhile(w, 400, async () => {
      await sleep(2000)
      w.net.link('h2', false)
      await sleep(5000)
      w.net.link('h2', true)
    })
    const reps = await caughtUp(w, 'host 2 link cut 5 s', { resets: false })
    const after = upstreamCounts(reps, w)
    // The clients on host 2 at the cut (the report keeps the clients' order) went to another host.
    const onH2 = beforeReps.map((r, i) => (r.upstreams.at(-1)?.startsWith(`${h2.addr}:`) === true ? i : -1)).filter((i) => i >= 0)
    const moved = onH2.filter((i) => reps[i]!.upstreams.slice(beforeReps[i]!.upstreams.length).some((u) => !u.startsWith(`${h2.addr}:`)))
    w.summary.push(`clients per host before the cut ${JSON.stringify(before)}, after ${JSON.stringify(after)}; of the ${onH2.length} on host 2, ${moved.length} moved to another host; close codes seen ${JSON.stringify(closeCounts(reps, beforeReps))}`)
    assert.equal(moved.length, onH2.length, `Expected every client of host 2 to move to another host while its link was cut, got ${moved.length} of ${onH2.length}`)
  })

  await t.test('a task whose runner dies mid-run completes on another host; the singleton runs once and moves', async () => {
    const taskFile = join(w.shared, 'tasks.log')
    // Tasks queued on host 1; whichever host's jobs process takes them. Enough of them that host 3 gets some.
    const ids: string[] = []
    let onH3: string | null = null
    for (let round = 0; round < 4 && onH3 === null; round++) {
      for (let k = 0; k < 4; k++) {
        const n = `${round}-${k}`
        const r = await w.agent.http('POST', h1.url(`/enqueue?ms=6000&n=${n}`))
        assert.equal(r.status, 202, `Expected POST /enqueue on host 1 to answer 202, got ${r.status} ${r.text}`)
        ids.push(n)
      }
      onH3 = await until('a task started on host 3', () => lines(taskFile).map((l) => l.split(' ')).find((p) => p[0] === 'start' && p[2] === 'h3')?.[1] ?? null, 5000, 100).catch(() => null)
    }
    assert.ok(onH3 !== null, `Expected one of ${ids.length} tasks queued on host 1 to start on host 3, got:\n${lines(taskFile).join('\n')}`)
    const holderBefore = ticks(w).at(-1)
    const killedAt = Date.now()
    await h3.killAll()
    const done = await until(`task ${onH3} done after its runner (host 3) died`, () => lines(taskFile).map((l) => l.split(' ')).find((p) => p[0] === 'done' && p[1] === onH3) ?? null, 120_000, 250)
    w.summary.push(`task ${onH3}: started on h3, host 3 killed, done on ${done[2]} attempt ${done[3]} after ${Date.now() - killedAt} ms`)
    assert.notEqual(done[2], 'h3', `Expected task ${onH3} to complete on another host than the dead host 3, got ${done.join(' ')}`)
    await until('every queued task done', () => ids.every((n) => lines(taskFile).some((l) => l.startsWith(`done ${n} `))), 120_000, 250)
    // The singleton's host dies: it moves to another host, with a higher fencing token. If it was
    // host 3, that already happened; else its host is killed now.
    assert.ok(holderBefore !== undefined, `Expected singleton ticks in ${join(w.shared, 'ticks.log')}, got none`)
    const moveFrom = async (holder: Tick, since: number): Promise<void> => {
      const moved = await until(`singleton moved from ${holder.host}`, () => ticks(w).find((k) => k.ms > since && k.host !== holder.host && k.token > holder.token) ?? null, 60_000, 250)
      w.summary.push(`singleton: ${holder.host}#${holder.token} killed, runs on ${moved.host}#${moved.token} ${moved.ms - since} ms later`)
    }
    if (holderBefore.host === 'h3') await moveFrom(holderBefore, killedAt)
    await h3.up()
    if (holderBefore.host !== 'h3') {
      const holder = ticks(w).at(-1)!
      const victim = w.hosts.find((h) => h.role === holder.host)!
      const at = Date.now()
      await victim.killAll()
      await moveFrom(holder, at)
      victim.cli('down')
      await victim.up()
    }
    const hist = singletonHistory(ticks(w))
    for (const [token, hs] of hist.tokenHosts) assert.equal(hs.size, 1, `Expected fencing token ${token} held by one host, got ${[...hs].join(', ')}`)
    w.summary.push(`singleton holders in order: ${hist.holders.join(' -> ')}; ticks with a stale token ${hist.stale} (for at most ${hist.staleMs} ms)`)
    // Clients whose host died meanwhile resumed: publish a little and check everyone.
    await publishWhile(w, 100, async () => undefined)
    await caughtUp(w, 'after the task and singleton kills', { resets: false })
  })

  /** Publishes 400 messages while Redis is killed -9 and started again, with or without its AOF; then checks every client. */
  const redisRestart = async (aof: boolean, downMs: number, label: string): Promise<void> => {
    await publishWhile(w, 400, async () => {
      await sleep(2000)
      await w.redis.kill()
      await sleep(downMs)
      await w.redis.start({ aof })
    })
    await caughtUp(w, label, { resets: true })
  }

  await t.test('Redis killed and restarted with its append-only file: acknowledged messages delivered', () => redisRestart(true, 2000, 'Redis kill -9 + restart with AOF'))

  await t.test('Redis killed and restarted without its data: delivered or an explicit reset, no silent gap', () => redisRestart(false, 1000, 'Redis kill -9 + restart empty (no AOF)'))

  await t.test('one idempotency key published on two hosts is stored once', async () => {
    const key = `k-${Date.now()}`
    const [a, b] = await Promise.all([w.agent.http('POST', h1.url(`/publish?channel=${CHANNEL}&key=${key}`)), w.agent.http('POST', h3.url(`/publish?channel=${CHANNEL}&key=${key}`))])
    assert.equal(a.status, 200, `Expected the publish on host 1 to answer 200, got ${a.status} ${a.text}`)
    assert.equal(b.status, 200, `Expected the publish on host 3 to answer 200, got ${b.status} ${b.text}`)
    const ra = JSON.parse(a.text) as { offset: number; epoch: string }
    const rb = JSON.parse(b.text) as { offset: number; epoch: string }
    assert.deepEqual([rb.epoch, rb.offset], [ra.epoch, ra.offset], `Expected one stored message (same epoch and offset) for key ${key} on hosts 1 and 3, got ${a.text} and ${b.text}`)
    const next = await w.agent.http('POST', h1.url(`/publish?channel=${CHANNEL}`))
    const rn = JSON.parse(next.text) as { offset: number; epoch: string }
    assert.deepEqual([rn.epoch, rn.offset], [ra.epoch, ra.offset + 1], `Expected the next publish right after the keyed one (stored once), got ${next.text} after ${a.text}`)
    w.summary.push(`idempotency key on h1 and h3: both ${ra.epoch}:${ra.offset}, next ${rn.offset}`)
    w.acked.push(ra, rn)
    await caughtUp(w, 'idempotent publish', { resets: true })
  })

  w.summary.push(`total ${Date.now() - started} ms`)
  process.stdout.write(w.summary.map((l) => `# ${l}\n`).join(''))
})
