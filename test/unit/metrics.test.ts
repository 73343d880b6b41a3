import assert from 'node:assert/strict'
import { test } from 'node:test'
import type { WorkerMetrics } from '../../server/arbiter/ipc.js'
import { zeroCounts } from '../../server/arbiter/exits.js'
import { METRIC_NAMES, type ScrapeInput } from '../../server/metrics/families.js'
import { DURATION_BUCKETS, DurationHistogram, addHistogram, bucketOf, emptyHistogram } from '../../server/metrics/histogram.js'
import { ScrapeRegistry, WorkerTotals } from '../../server/metrics/registry.js'
import { RequestMetrics, statusClass } from '../../server/metrics/request-metrics.js'
import { parseStubStatus, splitHostPort } from '../../server/metrics/sources.js'
import { nginxValues } from '../../server/stack/nginx.js'
import { loadStackConfig } from '../../server/config/stack.js'

test('bucketOf: a value goes in the first bucket whose bound it does not exceed; past 10 s in +Inf', () => {
  assert.equal(bucketOf(0), 0)
  assert.equal(bucketOf(0.005), 0)
  assert.equal(bucketOf(0.0051), 1)
  assert.equal(bucketOf(10), DURATION_BUCKETS.length - 1)
  assert.equal(bucketOf(11), DURATION_BUCKETS.length)
})

test('DurationHistogram and addHistogram: counts per bucket, sum and count add up', () => {
  const h = new DurationHistogram()
  h.observe(0.001)
  h.observe(0.3)
  h.observe(60)
  const total = emptyHistogram()
  addHistogram(total, h.snapshot())
  addHistogram(total, h.snapshot())
  assert.equal(total.count, 6)
  assert.equal(Math.round(total.sum * 1000), 2 * 60_301)
  assert.equal(total.buckets[0], 2)
  assert.equal(total.buckets[bucketOf(0.3)], 2)
  assert.equal(total.buckets.at(-1), 2)
  assert.throws(() => addHistogram(total, { buckets: [1], sum: 0, count: 1 }), /Expected a histogram of 12 buckets, got 1/)
})

test('statusClass: 1xx..5xx, anything else counts as 5xx', () => {
  assert.deepEqual([100, 204, 302, 404, 503, 0, 700].map(statusClass), [0, 1, 2, 3, 4, 4, 4])
})

test('RequestMetrics: app requests by status with durations, health probes apart', () => {
  const m = new RequestMetrics()
  m.app(200, 3)
  m.app(500, 2000)
  m.health(200)
  const s = m.snapshot()
  m.stop()
  assert.deepEqual(s.requests, [0, 1, 0, 0, 1, 0, 1, 0, 0, 0])
  assert.equal(s.duration.count, 2)
  assert.ok(s.rss > 0 && s.heapUsed > 0)
})

function worker(app2xx: number): WorkerMetrics {
  const d = new DurationHistogram()
  for (let i = 0; i < app2xx; i++) d.observe(0.01)
  return { requests: [0, app2xx, 0, 0, 0, 0, 0, 0, 0, 0], duration: d.snapshot(), loopDelayP99: 0.001, loopDelayMax: 0.002, rss: 1, heapUsed: 2, heapTotal: 3 }
}

test('WorkerTotals: a gone worker keeps counting, so the totals never go down', () => {
  const totals = new WorkerTotals()
  const a = worker(5)
  const b = worker(7)
  assert.equal(totals.sum([a, b, null]).requests[1], 12)
  totals.retire(a)
  totals.retire(null)
  const after = totals.sum([b, worker(1)])
  assert.equal(after.requests[1], 13)
  assert.equal(after.duration.count, 13)
})

function input(over: Partial<ScrapeInput> = {}): ScrapeInput {
  const restarts = zeroCounts()
  restarts.crash = 2
  return {
    workers: [{ slot: 1, inflight: 3, metrics: worker(4) }],
    requests: [0, 4, 0, 0, 1, 0, 2, 0, 0, 0],
    duration: worker(4).duration,
    ready: 2,
    expected: 2,
    generation: 3,
    reloading: false,
    restarts,
    jobs: { status: null, report: { version: 'v', singletons: { clock: { state: 'running', pid: 9 } }, tasks: { queued: 1, running: 0, done: 2, failed: 0, runningHere: 0 } } },
    push: { connections: 4, channels: 1, heartbeatLagMs: 12, counters: { delivered: 9, recovered: 1, notRecovered: 0, slowConsumers: 0, lagging: 0, connections: 5 }, feed: { resets: 0 }, bridge: { epoch: 'e1', accepted: 6, deduplicated: 0, kept: 6, channels: 2, epochChanges: 1 } },
    bridge: { epoch: 'e1', accepted: 7, deduplicated: 1, kept: 7, channels: 2 },
    nginx: parseStubStatus('Active connections: 2 \nserver accepts handled requests\n 10 10 20 \nReading: 0 Writing: 1 Waiting: 1 \n'),
    up: { arbiter: true, push: true, bridge: true, nginx: true },
    ...over,
  }
}

test('ScrapeRegistry: Prometheus text with every family, labels, a cumulative histogram', async () => {
  const text = await new ScrapeRegistry(false).text(input())
  assert.match(text, /^# HELP forkyard_up /m)
  assert.match(text, /^forkyard_up\{process="nginx"\} 1$/m)
  assert.match(text, /^forkyard_http_requests_total\{route="app",status="2xx"\} 4$/m)
  assert.match(text, /^forkyard_http_requests_total\{route="health",status="2xx"\} 2$/m)
  assert.match(text, /^forkyard_http_request_duration_seconds_bucket\{route="app",le="\+Inf"\} 4$/m)
  assert.match(text, /^forkyard_http_request_duration_seconds_count\{route="app"\} 4$/m)
  assert.match(text, /^forkyard_http_requests_in_flight 3$/m)
  assert.match(text, /^forkyard_worker_restarts_total\{cause="crash"\} 2$/m)
  assert.match(text, /^forkyard_worker_restarts_total\{cause="max-requests"\} 0$/m)
  assert.match(text, /^forkyard_reload_generation 3$/m)
  assert.match(text, /^forkyard_jobs_tasks\{state="queued"\} 1$/m)
  assert.doesNotMatch(text, /runningHere/)
  assert.match(text, /^forkyard_jobs_singleton_running\{name="clock"\} 1$/m)
  assert.match(text, /^forkyard_push_resumes_total\{result="recovered"\} 1$/m)
  assert.match(text, /^forkyard_push_delivery_lag_seconds 0.012$/m)
  assert.match(text, /^forkyard_bridge_publishes_total 7$/m, 'the bridge\'s own count, not the push process\'s older copy')
  assert.match(text, /^forkyard_bridge_dedup_hits_total 1$/m)
  assert.match(text, /^forkyard_bridge_epoch_changes_total 1$/m, 'epoch changes as the push process saw them')
  assert.match(text, /^forkyard_nginx_connections\{state="active"\} 2$/m)
  assert.match(text, /^forkyard_nginx_requests_total 20$/m)
  assert.match(text, /^forkyard_worker_resident_memory_bytes\{worker="1"\} 1$/m)
  // Every sample line names a family of METRIC_NAMES.
  for (const line of text.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
    assert.ok(METRIC_NAMES.includes(line.split(/[{ ]/)[0]!), line)
  }
})

test('ScrapeRegistry: a source that did not answer is up 0 and its families are empty', async () => {
  const text = await new ScrapeRegistry(false).text(input({ push: null, bridge: null, nginx: null, up: { arbiter: true, push: false, bridge: false } }))
  assert.match(text, /^forkyard_up\{process="push"\} 0$/m)
  assert.doesNotMatch(text, /^forkyard_push_deliveries_total /m)
  assert.doesNotMatch(text, /^forkyard_bridge_publishes_total /m)
  // Push down, the bridge up: the bridge's families stay (they used to come through push).
  const pushDown = await new ScrapeRegistry(false).text(input({ push: null, up: { arbiter: true, push: false, bridge: true } }))
  assert.match(pushDown, /^forkyard_up\{process="bridge"\} 1$/m)
  assert.match(pushDown, /^forkyard_bridge_publishes_total 7$/m)
  assert.doesNotMatch(pushDown, /^forkyard_bridge_epoch_changes_total /m)
})

test('ScrapeRegistry with the process metrics: the arbiter\'s own under forkyard_arbiter_', async () => {
  const text = await new ScrapeRegistry().text(input())
  assert.match(text, /^forkyard_arbiter_process_resident_memory_bytes \d+/m)
})

test('parseStubStatus refuses what is not stub_status, saying what it got', () => {
  assert.throws(() => parseStubStatus('<html>'), /Expected nginx stub_status text .*got "<html>"/)
})

test('splitHostPort: a wildcard listen address is reached on loopback', () => {
  assert.deepEqual(splitHostPort('0.0.0.0:8080'), { host: '127.0.0.1', port: 8080 })
  assert.deepEqual(splitHostPort('[::]:8080'), { host: '::1', port: 8080 })
  assert.deepEqual(splitHostPort('127.0.0.1:9'), { host: '127.0.0.1', port: 9 })
})

test('FORKYARD_METRICS_ALLOW: loopback by default, allow lines for nginx, none, and a clear error', () => {
  const env = { FORKYARD_BIND: 'unix:/tmp/x.sock', FORKYARD_RUN_DIR: '/tmp/fy-run-test' }
  assert.deepEqual(loadStackConfig(env).metricsAllow.map((r) => r.text), ['127.0.0.1', '::1'])
  assert.equal(nginxValues(env, '/kit').METRICS_ALLOW, '            allow 127.0.0.1/32;\n            allow ::1/128;')
  assert.equal(nginxValues({ ...env, FORKYARD_METRICS_ALLOW: '10.9.9.0/24' }, '/kit').METRICS_ALLOW, '            allow 10.9.9.0/24;')
  assert.match(nginxValues({ ...env, FORKYARD_METRICS_ALLOW: 'none' }, '/kit').METRICS_ALLOW!, /nobody/)
  assert.throws(() => loadStackConfig({ ...env, FORKYARD_METRICS_ALLOW: '10.9.9.0/33' }), /Expected FORKYARD_METRICS_ALLOW to be IP addresses or CIDR blocks .*got "10.9.9.0\/33"/)
})
