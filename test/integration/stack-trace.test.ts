/**
 * Request ids and W3C trace context through the kit's nginx: a trusted peer's X-Request-ID is kept
 * end to end (found by `forkyard logs --req`, as `make logs REQ=`), its traceparent continued with
 * nginx as a span; a malformed id is replaced; once the peer is no longer trusted (a live .env
 * edit), its id and trace are replaced too.
 */
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { startStackRun } from '../helpers/stack.js'
import { root, until } from '../helpers/server.js'

interface Seen {
  reqId: string
  trace: { traceId: string; spanId: string; parentSpanId: string | null; flags: string; traceparent: string }
  traceparent: string | null
}

test('a trusted X-Request-ID and traceparent are kept and traced; a bad one or an untrusted peer gets new ones', async (t) => {
  const s = await startStackRun(t, {}, { ownProject: { FORKYARD_APP: join(root, 'test/fixtures/trace-app.mjs'), FORKYARD_TRUSTED_ADDRESSES: '127.0.0.1,::1' } })
  const traceId = '4bf92f3577b34da6a3ce929d0e0e4736'
  const parent = '00f067aa0ba902b7'
  const ask = async (headers: Record<string, string>): Promise<{ header: string | null; body: Seen }> => {
    const r = await fetch(s.url('/trace'), { headers })
    assert.equal(r.status, 200)
    return { header: r.headers.get('x-request-id'), body: (await r.json()) as Seen }
  }

  const kept = await ask({ 'X-Request-ID': 'lb-req-0001', traceparent: `00-${traceId}-${parent}-01`, tracestate: 'vendor=1' })
  assert.equal(kept.header, 'lb-req-0001')
  assert.equal(kept.body.reqId, 'lb-req-0001')
  assert.equal(kept.body.trace.traceId, traceId, 'the trace continues')
  assert.match(kept.body.trace.parentSpanId ?? '', /^[0-9a-f]{16}$/)
  assert.notEqual(kept.body.trace.parentSpanId, parent, "nginx is a span between the caller's and the app's")
  assert.equal(kept.body.trace.flags, '01')
  assert.equal(kept.body.trace.traceparent, `00-${traceId}-${kept.body.trace.spanId}-01`, 'what the app sends on')
  const found = await until('the request in the logs', () => {
    const r = s.cli('logs', '--req', 'lb-req-0001', '--json')
    const lines = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
    return lines.some((l) => l.svc === 'nginx' && l.path === '/trace') ? lines : undefined
  }, 10_000, 200)
  const nginxLine = found.find((l) => l.svc === 'nginx')!
  assert.equal(nginxLine.traceId, traceId, 'nginx logs the trace id')

  const malformed = await ask({ 'X-Request-ID': 'has spaces and; semicolons', traceparent: `00-${'0'.repeat(32)}-${parent}-01` })
  assert.match(malformed.header ?? '', /^[0-9a-f]{32}$/, 'a malformed id is replaced by nginx\'s')
  assert.equal(malformed.body.reqId, malformed.header)
  assert.notEqual(malformed.body.trace.traceId, '0'.repeat(32), 'an all-zero trace id is invalid: a new trace')

  // The same peer, no longer trusted: the edit reaches nginx live.
  const envFile = join(s.projectDir, '.env')
  writeFileSync(envFile, readFileSync(envFile, 'utf8').replace('FORKYARD_TRUSTED_ADDRESSES=127.0.0.1,::1', 'FORKYARD_TRUSTED_ADDRESSES=10.9.9.0/24'))
  const untrusted = await until('untrusted after the edit', async () => {
    const r = await ask({ 'X-Request-ID': 'lb-req-0002', traceparent: `00-${traceId}-${parent}-01` })
    return r.header !== 'lb-req-0002' ? r : undefined
  }, 15_000, 300)
  assert.match(untrusted.header ?? '', /^[0-9a-f]{32}$/)
  assert.notEqual(untrusted.body.trace.traceId, traceId, 'an untrusted traceparent starts a new trace')
  assert.equal(untrusted.body.traceparent?.split('-')[1], untrusted.body.trace.traceId, 'the app got the header nginx made')
})
