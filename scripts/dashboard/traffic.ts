/**
 * Realistic traffic for `make dashboard-screenshot`, all through the stack's nginx: page and API
 * requests at a rate that rises and falls (some 404s), messages published by the example app
 * (POST /api/notify, public and private channels), pipelines run by the jobs process, and
 * WebSocket clients (the kit's own client/push-client.js) that subscribe, come and go, and resume
 * from their last offset. Optionally a worker killed -9 at a third and `forkyard reload` at two
 * thirds, through the arbiter's control socket, so the restart and generation panels move.
 */
import WebSocket from 'ws'
import { PushClient } from '../../client/push-client.js'
import { controlRequest, type ArbiterStatus } from '../../server/arbiter/control.js'
import { signPushToken } from '../../server/push/tokens.js'

const WS = WebSocket as unknown as typeof globalThis.WebSocket
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export interface TrafficOptions {
  /** http://127.0.0.1:<FORKYARD_PORT> */
  base: string
  seconds: number
  /** FORKYARD_PUSH_SECRET, for a private channel; empty = public channels only. */
  secret: string
  /** The arbiter's control socket (run/arbiter.sock); null = no kill, no reload. */
  controlSocket: string | null
  say: (s: string) => void
}

export interface TrafficSummary {
  requests: number
  byStatus: Record<string, number>
  failures: number
  pipelines: number
  published: number
  received: number
  resumes: number
  events: { t: number; what: string }[]
}

interface Client {
  push: PushClient
  received: number
}

/** Requests per second at `t` s: a slow swell between about 12 and 48, with a burst at the middle. */
export function rateAt(t: number, seconds: number): number {
  const swell = 30 + 18 * Math.sin((2 * Math.PI * t) / Math.max(30, seconds / 2))
  const mid = Math.abs(t - seconds / 2) < 4 ? 25 : 0
  return Math.max(5, swell + mid)
}

function pick<T>(items: readonly T[]): T {
  return items[Math.floor(Math.random() * items.length)]!
}

export async function driveTraffic(o: TrafficOptions): Promise<TrafficSummary> {
  const s: TrafficSummary = { requests: 0, byStatus: {}, failures: 0, pipelines: 0, published: 0, received: 0, resumes: 0, events: [] }
  const started = Date.now()
  const elapsed = (): number => (Date.now() - started) / 1000
  const event = (what: string): void => {
    s.events.push({ t: Date.now() / 1000, what })
    o.say(`${elapsed().toFixed(0).padStart(3)} s  ${what}`)
  }
  const wsUrl = `${o.base.replace(/^http/, 'ws')}/ws`
  const privateChannel = 'private:dashboard'
  const token = o.secret.length >= 32 ? signPushToken(o.secret, { channels: [privateChannel], ttlSeconds: o.seconds + 600 }) : null

  let inflight = 0
  const send = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<number> => {
    inflight++
    try {
      const init: RequestInit = { method, headers: { ...headers, ...(body === undefined ? {} : { 'content-type': 'application/json' }) }, signal: AbortSignal.timeout(15_000) }
      if (body !== undefined) init.body = JSON.stringify(body)
      const res = await fetch(`${o.base}${path}`, init)
      await res.arrayBuffer()
      s.requests++
      const cls = `${Math.floor(res.status / 100)}xx`
      s.byStatus[cls] = (s.byStatus[cls] ?? 0) + 1
      return res.status
    } catch {
      s.failures++
      return 0
    } finally {
      inflight--
    }
  }

  // One request of the mix: mostly reads, some publishes, some 404s, now and then a static file.
  const one = async (): Promise<void> => {
    const r = Math.random()
    if (r < 0.45) await send('GET', '/api/pipelines')
    else if (r < 0.55) await send('GET', pick(['/static/index.html', '/static/app.js', '/static/style.css', '/healthz']))
    else if (r < 0.63) await send('GET', pick(['/api/pipelines/00000000000000000000000000000000', '/api/users', '/favicon.ico', '/wp-login.php']))
    else if (r < 0.93 || token === null) {
      if ((await send('POST', '/api/notify', { channel: 'news', message: `tick ${s.requests}` })) === 202) s.published++
    } else if ((await send('POST', '/api/notify', { channel: privateChannel, message: 'private tick' }, { authorization: `Bearer ${token}` })) === 202) s.published++
  }

  const pipeline = async (burst = false): Promise<void> => {
    const steps = [
      { name: 'checkout', kind: 'sleep', ms: 200 + Math.floor(Math.random() * 600) },
      { name: 'compile', kind: 'cpu', ms: 100 + Math.floor(Math.random() * (burst ? 900 : 400)) },
      { name: 'test', kind: 'sleep', ms: 300 + Math.floor(Math.random() * 1500) },
    ]
    if ((await send('POST', '/api/pipelines', { name: burst ? 'release' : 'build', steps })) === 202) s.pipelines++
  }

  // WebSocket clients: every one follows the public channels, every other one the private channel.
  const clients: Client[] = []
  const open = (from?: { offset: number; epoch: string }): Client => {
    const c: Client = { push: new PushClient(wsUrl, { WebSocket: WS, minDelayMs: 100, maxDelayMs: 2000, ...(token === null ? {} : { getToken: () => token }) }), received: 0 }
    const count = (): void => {
      c.received++
      s.received++
    }
    c.push.subscribe('news', count, from ?? {})
    c.push.subscribe('pipelines', count)
    if (token !== null && clients.length % 2 === 0) c.push.subscribe(privateChannel, count)
    c.push.onrecovered = () => s.resumes++
    clients.push(c)
    return c
  }
  for (let i = 0; i < 6; i++) open()
  event(`${clients.length} WebSocket clients subscribed to news, pipelines${token === null ? '' : ` and ${privateChannel}`}`)

  const killAt = o.seconds / 3
  const reloadAt = (2 * o.seconds) / 3
  let killed = false
  let reloading: Promise<void> | null = null
  let nextPipeline = 2
  let nextChurn = 10
  let staleAt: number | null = null
  let staleDone = false
  let nextRush = 7
  let carry = 0
  let peak = 0
  // A tick every 100 ms starts the requests due by then (bounded: at most 64 in flight).
  while (elapsed() < o.seconds) {
    const t = elapsed()
    carry += rateAt(t, o.seconds) / 10
    while (carry >= 1 && inflight < 64) {
      carry--
      void one()
    }
    carry = Math.min(carry, 5)
    peak = Math.max(peak, inflight)
    if (t >= nextPipeline) {
      nextPipeline += 4
      void pipeline()
      if (Math.abs(t - o.seconds / 2) < 2) for (let i = 0; i < 5; i++) void pipeline(true)
    }
    if (t >= nextChurn) {
      // A client leaves (a tab closed) and comes back from where it was: a resume, recovered.
      nextChurn += 12
      const gone = clients.shift()
      if (gone !== undefined) {
        const pos = gone.push.position('news')
        gone.push.close()
        await sleep(300)
        open(pos?.offset !== null && pos?.offset !== undefined && pos.epoch !== null ? { offset: pos.offset, epoch: pos.epoch } : undefined)
      }
      // Between two of those (its own peak in the resumes panel), once past the middle: a client
      // that saved its position in another epoch (before a bridge lost its history), not recovered.
      if (staleAt === null && t > o.seconds / 2) staleAt = t + 6
    }
    if (staleAt !== null && !staleDone && t >= staleAt) {
      staleDone = true
      open({ offset: 1, epoch: 'an-older-epoch' })
      event('a client resumed from an unknown epoch (not recovered)')
    }
    if (t >= nextRush) {
      // Many users at once (a page shared in a chat): 30 requests together, a few in flight at the heartbeat.
      nextRush += 15
      for (let i = 0; i < 30; i++) void send('GET', '/api/pipelines')
    }
    if (o.controlSocket !== null && !killed && t >= killAt) {
      killed = true
      try {
        const st = (await controlRequest(o.controlSocket, 'status')) as ArbiterStatus
        const victim = st.workers.find((w) => w.state === 'ready') ?? st.workers[0]
        if (victim !== undefined) {
          process.kill(victim.pid, 'SIGKILL')
          event(`kill -9 worker ${victim.worker} (pid ${victim.pid})`)
        }
      } catch (err) {
        event(`could not kill a worker: ${(err as Error).message}`)
      }
    }
    if (o.controlSocket !== null && reloading === null && t >= reloadAt) {
      event('forkyard reload')
      reloading = controlRequest(o.controlSocket, 'reload', 5 * 60_000).then(
        (r) => event((r as { reloaded: boolean }).reloaded ? 'reload complete' : 'reload aborted'),
        (err: unknown) => event(`reload failed: ${(err as Error).message}`),
      )
    }
    peak = Math.max(peak, inflight)
    await sleep(100)
  }
  event(`load stopped (${s.requests} requests, at most ${peak} in flight); waiting for the last answers`)
  for (let i = 0; i < 150 && inflight > 0; i++) await sleep(100)
  if (reloading !== null) await Promise.race([reloading, sleep(60_000)])
  for (const c of clients) c.push.close()
  return s
}
