/**
 * What the arbiter asks the other processes at scrape time, each with a bounded timeout: the push
 * process's counters (its loopback GET /metrics, JSON), the bridge's stats (a `stats` request on
 * its ZeroMQ socket, as the push process asks), and nginx's stub_status. A source that does not
 * answer is reported as forkyard_up{process} 0 in the scrape, never as an error of the whole scrape.
 */
import { request } from 'node:http'
import { Dealer } from 'zeromq'
import { bridgeEndpoints } from '../bridge/wire.js'

/** The push process's GET /metrics (push/push-server.ts). */
export interface PushMetrics {
  connections: number
  channels: number
  heartbeatLagMs: number | null
  counters: Record<string, number>
  feed: Record<string, number>
  bridge: Record<string, unknown>
}

/** nginx's stub_status page, parsed. */
export interface StubStatus {
  active: number
  accepts: number
  handled: number
  requests: number
  reading: number
  writing: number
  waiting: number
}

function get(options: { host?: string; port?: number; socketPath?: string; path: string }, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ ...options, method: 'GET', agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => (res.statusCode === 200 ? resolve(text) : reject(new Error(`Expected status 200 from ${options.path}, got ${res.statusCode ?? 0}`))))
    })
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`no answer from ${options.path} within ${timeoutMs} ms`)))
    req.on('error', reject)
    req.end()
  })
}

/** host:port of a TCP listener as a client reaches it: a wildcard address means this host. */
export function splitHostPort(bind: string): { host: string; port: number } {
  const i = bind.lastIndexOf(':')
  let host = i === -1 ? '' : bind.slice(0, i).replace(/^\[|\]$/g, '')
  if (host === '' || host === '0.0.0.0') host = '127.0.0.1'
  if (host === '::') host = '::1'
  return { host, port: Number(bind.slice(i + 1)) }
}

export async function fetchPush(bind: string, timeoutMs: number): Promise<PushMetrics> {
  const body = JSON.parse(await get({ ...splitHostPort(bind), path: '/metrics' }, timeoutMs)) as Partial<PushMetrics>
  if (typeof body.counters !== 'object' || body.counters === null) throw new Error(`Expected the push process's /metrics to hold counters, got ${JSON.stringify(body).slice(0, 200)}`)
  return { connections: body.connections ?? 0, channels: body.channels ?? 0, heartbeatLagMs: body.heartbeatLagMs ?? null, counters: body.counters, feed: body.feed ?? {}, bridge: body.bridge ?? {} }
}

/**
 * Active connections: 2
 * server accepts handled requests
 *  10 10 20
 * Reading: 0 Writing: 1 Waiting: 1
 */
export function parseStubStatus(text: string): StubStatus {
  const active = /Active connections:\s*(\d+)/.exec(text)
  const totals = /\n\s*(\d+)\s+(\d+)\s+(\d+)\s*\n/.exec(text)
  const rww = /Reading:\s*(\d+)\s+Writing:\s*(\d+)\s+Waiting:\s*(\d+)/.exec(text)
  if (active === null || totals === null || rww === null) throw new Error(`Expected nginx stub_status text (Active connections: ...), got ${JSON.stringify(text.slice(0, 200))}`)
  return { active: +active[1]!, accepts: +totals[1]!, handled: +totals[2]!, requests: +totals[3]!, reading: +rww[1]!, writing: +rww[2]!, waiting: +rww[3]! }
}

export async function fetchNginx(listen: { host: string; port: number }, timeoutMs: number): Promise<StubStatus> {
  return parseStubStatus(await get({ ...listen, path: '/nginx-status' }, timeoutMs))
}

/**
 * The bridge's own stats (bridge/bridge.ts `stats()`: accepted, deduplicated, kept, channels,
 * epoch...), asked on its request socket in `dir`, so that they do not depend on the push process.
 */
export async function fetchBridge(dir: string, timeoutMs: number): Promise<Record<string, unknown>> {
  const sock = new Dealer({ linger: 0, sendTimeout: timeoutMs, receiveTimeout: timeoutMs })
  try {
    sock.connect(bridgeEndpoints(dir).in)
    await sock.send(['stats', 'scrape'])
    const [kind, , body] = (await sock.receive()).map((f) => f.toString())
    const stats = kind === 'stats' ? (JSON.parse(body ?? '') as unknown) : null
    if (typeof stats !== 'object' || stats === null || typeof (stats as { epoch?: unknown }).epoch !== 'string') throw new Error(`Expected the bridge's stats with an epoch, got ${JSON.stringify([kind, body]).slice(0, 200)}`)
    return stats as Record<string, unknown>
  } finally {
    sock.close()
  }
}
