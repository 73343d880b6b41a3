/** The arbiter's health socket: GET /metrics next to /healthz and /readyz (arbiter/health-http.ts). */
import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { request } from 'node:http'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { listenHealth, type HealthHttpDeps } from '../../server/arbiter/health-http.js'

function get(socketPath: string, path: string, method = 'GET'): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, method }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (body += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body }))
    })
    req.on('error', reject)
    req.end()
  })
}

test('GET /metrics answers the scrape text with its content type; a failed scrape is a 500 that says why', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-health-'))
  let fail = false
  const deps: HealthHttpDeps = {
    live: () => ({ ok: true, readyWorkers: 1, expectedWorkers: 1 }),
    readiness: async () => ({ ready: true, components: {} }),
    metrics: { contentType: 'text/plain; version=0.0.4; charset=utf-8', text: async () => (fail ? Promise.reject(new Error('boom')) : 'forkyard_up{process="arbiter"} 1\n') },
  }
  const server = await listenHealth(join(dir, 'health.sock'), deps)
  t.after(() => {
    server.close()
    rmSync(dir, { recursive: true, force: true })
  })
  const ok = await get(join(dir, 'health.sock'), '/metrics')
  assert.deepEqual(ok, { status: 200, type: 'text/plain; version=0.0.4; charset=utf-8', body: 'forkyard_up{process="arbiter"} 1\n' })
  const head = await get(join(dir, 'health.sock'), '/metrics', 'HEAD')
  assert.equal(head.status, 200)
  assert.equal(head.body, '')
  fail = true
  const bad = await get(join(dir, 'health.sock'), '/metrics')
  assert.equal(bad.status, 500)
  assert.match(bad.body, /metrics failed: boom/)
  const other = await get(join(dir, 'health.sock'), '/nope')
  assert.equal(other.status, 404)
  assert.match(other.body, /Expected \/healthz, \/readyz or \/metrics, got \/nope/)
})
