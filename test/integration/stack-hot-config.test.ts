/**
 * Hot configuration through the stack as users run it (`forkyard up`, requests through nginx):
 * one edit of .env with an app key, a live server key, a push key, a bridge key, an nginx key and
 * the log level reaches every process within a second (the version each reports in /readyz), and
 * takes effect (nginx's body limit); a restart key rolls the workers by itself; `forkyard reload`
 * serves the new values, process.env included; a bad value is refused by every process with the
 * key named, the last good settings keep serving, and `forkyard down` still works.
 */
import assert from 'node:assert/strict'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { startStackRun } from '../helpers/stack.js'
import { root, sleep, until } from '../helpers/server.js'

interface Ready {
  status: number
  config: { ok?: boolean; version?: string; processes?: Record<string, string> }
}

async function readyz(url: string): Promise<Ready> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) })
    const body = (await res.json()) as { components?: { config?: Ready['config'] } }
    return { status: res.status, config: body.components?.config ?? {} }
  } catch {
    return { status: 0, config: {} }
  }
}

async function echo(url: string): Promise<{ pid: number; generation: number; greeting: string | null; envGreeting: string | null; version: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(3000) })
  return (await res.json()) as { pid: number; generation: number; greeting: string | null; envGreeting: string | null; version: string }
}

function logLines(dir: string, svc: string): Record<string, unknown>[] {
  return readFileSync(join(dir, `${svc}.log`), 'utf8').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
}

test('hot configuration under forkyard up: every process follows an edit within 1 s, restart keys roll, bad values are refused everywhere', { timeout: 5 * 60_000 }, async (t) => {
  const s = await startStackRun(t, {}, { ownProject: { FORKYARD_APP: join(root, 'test/fixtures/config-echo.mjs'), GREETING: 'one' } })
  const envFile = join(s.projectDir, '.env')
  const edit = (values: Record<string, string>): void => {
    let text = readFileSync(envFile, 'utf8')
    for (const [k, v] of Object.entries(values)) text = new RegExp(`^${k}=.*$`, 'm').test(text) ? text.replace(new RegExp(`^${k}=.*$`, 'm'), `${k}=${v}`) : `${text}${k}=${v}\n`
    writeFileSync(envFile, text)
  }
  const first = await readyz(s.url('/readyz'))
  assert.equal(first.status, 200, JSON.stringify(first))
  assert.equal((await echo(s.url('/'))).greeting, 'one')
  const big = 'x'.repeat(3000)
  assert.equal((await fetch(s.url('/'), { method: 'POST', body: big })).status, 200)

  // One edit, every kind of live key: each process reports the new version within a second.
  const editedAt = Date.now()
  edit({ GREETING: 'two', FORKYARD_REQUEST_TIMEOUT: '7s', FORKYARD_PUSH_MAX_SUBSCRIPTIONS: '7', FORKYARD_BRIDGE_HISTORY_COUNT: '77', FORKYARD_BODY_LIMIT: '2KiB', FORKYARD_LOG_LEVEL: 'debug' })
  const after = await until('every process on a new version', async () => {
    const r = await readyz(s.url('/readyz'))
    const versions = Object.values(r.config.processes ?? {})
    return r.config.version !== first.config.version && versions.length >= 6 && versions.every((v) => v === r.config.version) ? r : null
  }, 5000, 50)
  const tookMs = Date.now() - editedAt
  assert.ok(tookMs < 1500, `every process followed in ${tookMs} ms`)
  assert.deepEqual(Object.keys(after.config.processes ?? {}).sort(), ['arbiter', 'bridge', 'jobs', 'nginx', 'push', 'workers'])
  for (const svc of ['server', 'push', 'bridge', 'nginx']) {
    const applied = logLines(s.logDir, svc).filter((l) => String(l.msg).startsWith('config applied') && l.version === after.config.version)
    assert.ok(applied.length > 0, `${svc} logged the applied version`)
    for (const l of applied) assert.ok(Date.parse(String(l.time)) - editedAt <= 1000, `${svc} applied ${Date.parse(String(l.time)) - editedAt} ms after the edit`)
  }
  assert.equal((await echo(s.url('/'))).greeting, 'two')
  assert.equal((await fetch(s.url('/'), { method: 'POST', body: big })).status, 413, 'nginx took the new body limit')

  // A restart key: the workers are replaced by themselves, and the new ones start on the new settings.
  const before = await echo(s.url('/'))
  edit({ FORKYARD_PUBLISH_RESEND: '3s' })
  const rolled = await until('a new generation of workers', async () => {
    const e = await echo(s.url('/'))
    return e.generation > before.generation ? e : null
  }, 30_000, 100)
  assert.equal(rolled.envGreeting, 'two', 'a new worker starts with the settings in force in process.env too')
  // The log level reached them: a new worker logs 'worker ready' at debug level.
  await until('a debug line from a new worker', () => logLines(s.logDir, 'server').some((l) => l.level === 'debug' && l.msg === 'worker ready' && l.generation === rolled.generation), 5000, 100)

  // forkyard reload serves the new values.
  edit({ GREETING: 'three' })
  await sleep(1000)
  const reload = s.cli('reload')
  assert.equal(reload.status, 0, reload.stdout + reload.stderr)
  assert.match(reload.stdout, /reload complete/)
  // A worker of the new generation (nginx may still reach an old one draining its keep-alive connection).
  const reloaded = await until('an answer from the reloaded generation', async () => {
    const e = await echo(s.url('/'))
    return e.generation > rolled.generation ? e : null
  }, 10_000, 50)
  assert.deepEqual([reloaded.greeting, reloaded.envGreeting], ['three', 'three'])

  // A bad value: refused by every process, naming the key; the last good settings keep serving.
  const good = await readyz(s.url('/readyz'))
  const badAt = Date.now()
  edit({ FORKYARD_PUSH_MAX_SUBSCRIPTIONS: 'many' })
  await until('every process refused the edit', () => ['server', 'push', 'bridge', 'nginx'].every((svc) => logLines(s.logDir, svc).some((l) => String(l.msg).startsWith('config change refused') && Date.parse(String(l.time)) >= badAt - 50 && String(l.msg).includes('FORKYARD_PUSH_MAX_SUBSCRIPTIONS'))), 5000, 100)
  await sleep(500)
  const still = await readyz(s.url('/readyz'))
  assert.equal(still.status, 200)
  assert.equal(still.config.version, good.config.version)
  assert.equal((await echo(s.url('/'))).greeting, 'three')
  const ps = s.cli('ps')
  assert.equal(ps.status, 0, ps.stdout + ps.stderr)
  const down = s.cli('down')
  assert.equal(down.status, 0, down.stdout + down.stderr)
  assert.match(down.stdout, /stopped/)
})
