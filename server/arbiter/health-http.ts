/**
 * GET/HEAD /healthz and /readyz answered by the arbiter itself on <run dir>/health.sock, where the
 * kit's nginx sends them. A worker's event loop queues a probe behind every request it has
 * accepted: at ten times the load it can serve, a probe through a worker waited over a second.
 * The arbiter serves no app traffic and already knows what a probe asks (every worker's state and
 * heartbeat, and /readyz's components, health.ts), so it answers in milliseconds whatever the load;
 * overload shows in the answer, not as a timeout.
 *   /healthz: 200 while at least one worker is ready with a fresh heartbeat, else 503.
 *   /readyz: the deployment's readiness (health.ts), 200 or 503.
 *   /metrics: the one Prometheus scrape of the deployment (scrape.ts); nginx serves it at /metrics
 *   to FORKYARD_METRICS_ALLOW only.
 * Workers still answer both on the server's own binds (a direct `forkyard serve` without nginx).
 */
import { unlinkSync } from 'node:fs'
import { createServer, type Server, type ServerResponse } from 'node:http'
import type { Readiness } from './health.js'

/** The socket's name in the run directory (nginx's template reaches it there). */
export const HEALTH_SOCKET = 'health.sock'

export interface HealthHttpDeps {
  live: () => { ok: boolean; readyWorkers: number; expectedWorkers: number }
  readiness: () => Promise<Readiness>
  metrics: { contentType: string; text: () => Promise<string> }
}

function answer(res: ServerResponse, head: boolean, status: number, body: unknown): void {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' })
  res.end(head ? undefined : text)
}

export function listenHealth(path: string, deps: HealthHttpDeps): Promise<Server> {
  try {
    unlinkSync(path)
  } catch {
    // no stale socket
  }
  const server = createServer((req, res) => {
    const head = req.method === 'HEAD'
    const url = (req.url ?? '/').split('?')[0]
    if (req.method !== 'GET' && !head) return answer(res, head, 405, { error: `Expected GET or HEAD, got ${req.method ?? ''}` })
    if (url === '/healthz') {
      const l = deps.live()
      return answer(res, head, l.ok ? 200 : 503, { status: l.ok ? 'ok' : 'no worker ready', pid: process.pid, readyWorkers: l.readyWorkers, expectedWorkers: l.expectedWorkers })
    }
    if (url === '/readyz') {
      deps.readiness().then(
        (r) => answer(res, head, r.ready ? 200 : 503, { ...r, pid: process.pid }),
        (err: unknown) => answer(res, head, 503, { ready: false, error: (err as Error)?.message ?? String(err) }),
      )
      return
    }
    if (url === '/metrics') {
      deps.metrics.text().then(
        (text) => {
          res.writeHead(200, { 'Content-Type': deps.metrics.contentType, 'Content-Length': Buffer.byteLength(text), 'Cache-Control': 'no-store' })
          res.end(head ? undefined : text)
        },
        (err: unknown) => answer(res, head, 500, { error: `metrics failed: ${(err as Error)?.message ?? String(err)}` }),
      )
      return
    }
    answer(res, head, 404, { error: `Expected /healthz, /readyz or /metrics, got ${url}` })
  })
  // Probes are short: never keep a connection from a stuck client.
  server.headersTimeout = 5000
  server.requestTimeout = 5000
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      resolve(server)
    })
  })
}
