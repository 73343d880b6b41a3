/**
 * GET /metrics through the kit's nginx (`forkyard up`): one Prometheus scrape of the whole
 * deployment, served only to FORKYARD_METRICS_ALLOW (a refused address gets 403, and an edit of
 * .env changes who may scrape, live), whose counters move with real events: requests, a task, a worker
 * killed -9 (restarts by cause "crash"), `forkyard reload` (the generation, cause "reload"), a
 * WebSocket client that resumes (push resumes "recovered"); with push stopped, the bridge still
 * answers for itself.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { request } from 'node:http'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { startStackRun } from '../helpers/stack.js'
import { connect } from '../helpers/push.js'
import { root, until } from '../helpers/server.js'

interface Scrape {
  status: number
  contentType: string
  text: string
}

/** GET /metrics on nginx's port, from a chosen local address (127.0.0.2 reaches 127.0.0.1 on Linux). */
function scrape(port: number, from = '127.0.0.1'): Promise<Scrape> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/metrics', localAddress: from, agent: false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, contentType: String(res.headers['content-type'] ?? ''), text }))
    })
    req.setTimeout(5000, () => req.destroy(new Error('no answer from /metrics within 5 s')))
    req.on('error', reject)
    req.end()
  })
}

/** The value of one sample (`name{labels}` exactly as written), or null when absent. */
function sample(text: string, series: string): number | null {
  for (const line of text.split('\n')) if (line.startsWith(`${series} `)) return Number(line.slice(series.length + 1))
  return null
}

test('/metrics through nginx: allowed and refused addresses, counters that move with kills, reloads and resumes', { timeout: 5 * 60_000 }, async (t) => {
  const s = await startStackRun(t, {}, { ownProject: { FORKYARD_APP: join(root, 'example/app.mjs') } })
  const value = async (series: string): Promise<number> => {
    const r = await scrape(s.port)
    assert.equal(r.status, 200, r.text)
    const v = sample(r.text, series)
    assert.ok(v !== null, `${series} in the scrape:\n${r.text.slice(0, 3000)}`)
    return v
  }

  // Allowed (127.0.0.1, the default): Prometheus text with every process up.
  const first = await until('a scrape with every process up', async () => {
    const r = await scrape(s.port)
    return r.status === 200 && ['arbiter', 'jobs', 'push', 'bridge', 'nginx'].every((p) => sample(r.text, `forkyard_up{process="${p}"}`) === 1) ? r : null
  }, 20_000, 200)
  assert.match(first.contentType, /^text\/plain; version=0\.0\.4/)
  assert.match(first.text, /^# TYPE forkyard_http_request_duration_seconds histogram$/m)
  assert.equal(sample(first.text, 'forkyard_workers_expected'), 2)
  assert.equal(sample(first.text, 'forkyard_workers_ready'), 2)
  assert.ok((sample(first.text, 'forkyard_nginx_requests_total') ?? 0) > 0)
  assert.ok((sample(first.text, 'forkyard_arbiter_process_resident_memory_bytes') ?? 0) > 0)
  // Refused: another address of this host, not in FORKYARD_METRICS_ALLOW.
  assert.equal((await scrape(s.port, '127.0.0.2')).status, 403)

  // App requests are counted (from the workers' heartbeats, within a second).
  const app2xx = 'forkyard_http_requests_total{route="app",status="2xx"}'
  const before = await value(app2xx)
  for (let i = 0; i < 10; i++) assert.equal((await fetch(s.url('/api/pipelines'))).status, 200)
  await until('10 more app requests counted', async () => (await value(app2xx)) >= before + 10, 10_000, 100)
  assert.ok((await value('forkyard_http_request_duration_seconds_count{route="app"}')) >= before + 10)

  // A task run by the jobs process: its attempt, duration and the queue's done count.
  const pipeline = await fetch(s.url('/api/pipelines'), { method: 'POST', body: JSON.stringify({ name: 'metrics', steps: [{ name: 'a', kind: 'sleep', ms: 50 }] }) })
  assert.equal(pipeline.status, 202, await pipeline.text())
  await until('the task counted done', async () => (await scrape(s.port)).text.includes('forkyard_jobs_task_attempts_total{task="pipeline",outcome="done"} 1'), 15_000, 100)
  assert.equal(await value('forkyard_jobs_task_duration_seconds_count{task="pipeline"}'), 1)
  assert.ok((await value('forkyard_jobs_tasks{state="done"}')) >= 1)

  // A worker killed -9: one restart by cause "crash"; the request totals do not go down.
  const crashes = await value('forkyard_worker_restarts_total{cause="crash"}')
  const served = await value(app2xx)
  const st = JSON.parse(s.cli('status', '--json').stdout) as { workers: { pid: number }[]; generation: number }
  process.kill(st.workers[0]!.pid, 'SIGKILL')
  await until('crash counted', async () => (await value('forkyard_worker_restarts_total{cause="crash"}')) === crashes + 1, 15_000, 100)
  await until('two workers ready again', async () => (await value('forkyard_workers_ready')) === 2, 30_000, 100)
  assert.ok((await value(app2xx)) >= served, 'the killed worker\'s requests still count')

  // forkyard reload: generation + 1, two restarts by cause "reload".
  const generation = await value('forkyard_reload_generation')
  const reloads = await value('forkyard_worker_restarts_total{cause="reload"}')
  const r = s.cli('reload')
  assert.equal(r.status, 0, r.stdout + r.stderr)
  await until('generation bumped', async () => (await value('forkyard_reload_generation')) === generation + 1, 60_000, 100)
  await until('reload restarts counted', async () => (await value('forkyard_worker_restarts_total{cause="reload"}')) === reloads + 2, 15_000, 100)
  assert.equal(await value('forkyard_reload_in_progress'), 0)

  // A WebSocket client that resumes from its last offset: recovered + 1.
  const recovered = await value('forkyard_push_resumes_total{result="recovered"}')
  const a = connect(`ws://127.0.0.1:${s.port}/ws`)
  await a.opened
  a.send({ type: 'subscribe', channel: 'news' })
  await until('subscribed', () => a.messages.some((m) => m.type === 'subscribed'))
  assert.equal((await fetch(s.url('/api/notify'), { method: 'POST', body: JSON.stringify({ channel: 'news', message: 'one' }) })).status, 202)
  const got = await until('a message', () => a.messages.find((m) => m.type === 'message'))
  a.ws.close()
  await a.closed
  assert.equal((await fetch(s.url('/api/notify'), { method: 'POST', body: JSON.stringify({ channel: 'news', message: 'two' }) })).status, 202)
  const b = connect(`ws://127.0.0.1:${s.port}/ws`)
  await b.opened
  b.send({ type: 'subscribe', channel: 'news', offset: got.offset, epoch: got.epoch })
  const sub = await until('resumed', () => b.messages.find((m) => m.type === 'subscribed'))
  assert.equal(sub.recovered, true, JSON.stringify(sub))
  await until('the missed message', () => b.messages.find((m) => m.type === 'message'))
  b.ws.close()
  await until('recovered counted', async () => (await value('forkyard_push_resumes_total{result="recovered"}')) === recovered + 1, 10_000, 100)
  assert.ok((await value('forkyard_push_deliveries_total')) >= 2)
  assert.ok((await value('forkyard_bridge_publishes_total')) >= 2)

  // push stopped (supervisorctl stop): push is down, the bridge still up with its own counts.
  const ctl = (action: string): void => {
    const r = spawnSync('supervisorctl', ['-c', join(s.runDir, 'supervisorctl.conf'), action, 'push'], { env: { PATH: process.env.PATH ?? '' }, encoding: 'utf8', timeout: 60_000 })
    assert.equal(r.status, 0, `supervisorctl ${action} push: ${r.stdout}${r.stderr}`)
  }
  const publishes = await value('forkyard_bridge_publishes_total')
  ctl('stop')
  const withoutPush = (await scrape(s.port)).text
  assert.equal(sample(withoutPush, 'forkyard_up{process="push"}'), 0)
  assert.equal(sample(withoutPush, 'forkyard_up{process="bridge"}'), 1, 'the bridge answers the scrape itself')
  // push publishes its own heartbeat through the bridge every second until it stops: at least as many as before.
  assert.ok((sample(withoutPush, 'forkyard_bridge_publishes_total') ?? -1) >= publishes, `expected the bridge's publishes (at least ${publishes}) with push stopped:\n${withoutPush}`)
  ctl('start')
  await until('push back in the scrape', async () => sample((await scrape(s.port)).text, 'forkyard_up{process="push"}') === 1, 20_000, 200)

  // An edit of .env changes who may scrape, live: 127.0.0.1 refused, 127.0.0.2 allowed.
  const envFile = join(s.projectDir, '.env')
  writeFileSync(envFile, `${readFileSync(envFile, 'utf8')}FORKYARD_METRICS_ALLOW=10.9.9.0/24,127.0.0.2\n`)
  // Right after nginx's reload (HUP) an old nginx worker may still take a connection with the
  // old rules: wait for the new ones on both addresses.
  await until('127.0.0.1 refused and 127.0.0.2 allowed after the edit', async () => (await scrape(s.port)).status === 403 && (await scrape(s.port, '127.0.0.2')).status === 200, 10_000, 100)
  await new Promise((r) => setTimeout(r, 500))
  assert.equal((await scrape(s.port)).status, 403)
  assert.equal((await scrape(s.port, '127.0.0.2')).status, 200)
  // /healthz is not affected.
  assert.equal((await fetch(s.url('/healthz'))).status, 200)
})
