/**
 * README's Quick start, literally: a fresh `git clone` with no node_modules, no dist and no .env,
 * then `make up` (natively: Docker has its own test), which installs, builds, creates .env and
 * starts. Through nginx: the example app accepts a pipeline and runs it to done; an edit of .env
 * reaches the stack (the config version in /readyz changes within a second); `make reload`,
 * `make status`; a second `make up` rebuilds nothing; `make down` leaves no process running in the
 * clone. The machine's npm cache makes `npm ci` quick; the rest is what a user waits for.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { freePort, root, tempDir, until } from '../helpers/server.js'

/** Processes whose working directory is inside `dir` (every program of the stack runs there). */
function processesIn(dir: string): string[] {
  const out: string[] = []
  for (const pid of readdirSync('/proc').filter((p) => /^\d+$/.test(p))) {
    try {
      const cwd = readlinkSync(`/proc/${pid}/cwd`)
      if (cwd === dir || cwd.startsWith(`${dir}/`)) out.push(`${pid} ${readFileSync(`/proc/${pid}/cmdline`, 'utf8').replaceAll('\0', ' ').trim()}`)
    } catch {
      // gone, or not ours to read
    }
  }
  return out
}

async function readyz(url: string): Promise<{ status: number; version: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3000) })
    const body = (await res.json()) as { components?: { config?: { version?: string } } }
    return { status: res.status, version: body.components?.config?.version ?? '' }
  } catch {
    return { status: 0, version: '' }
  }
}

test('a fresh clone: make up installs, builds and starts; requests, an .env edit, reload, status; make down leaves nothing', { timeout: 8 * 60_000 }, async (t) => {
  const work = tempDir('fy-clone-')
  const dir = join(work, 'forkyard')
  const clone = spawnSync('git', ['clone', '-q', root, dir], { encoding: 'utf8' })
  assert.equal(clone.status, 0, clone.stderr)
  const port = await freePort()
  const env = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    // This test's ports, as an operator would pass them; the native stack even where Docker answers.
    FORKYARD_PORT: String(port),
    FORKYARD_PUSH_BIND: `127.0.0.1:${await freePort()}`,
    FORKYARD_DOCKER: '0',
    FORKYARD_WORKERS: '2',
    FORKYARD_GRACEFUL_TIMEOUT: '10s',
  }
  const make = (target: string, extra: string[] = []): { status: number | null; out: string } => {
    const r = spawnSync('make', ['--no-print-directory', target, ...extra], { cwd: dir, env, encoding: 'utf8', timeout: 6 * 60_000 })
    return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}` }
  }
  let failed = true
  t.after(() => {
    const down = make('down')
    if (down.status !== 0) process.stderr.write(`make down failed:\n${down.out}\n`)
    if (failed) process.stderr.write(`the clone stays for a look: ${dir}\n`)
    else rmSync(work, { recursive: true, force: true })
  })

  const started = Date.now()
  const up = make('up')
  const upSeconds = (Date.now() - started) / 1000
  assert.equal(up.status, 0, up.out.slice(-6000))
  assert.match(up.out, /npm ci/)
  assert.match(up.out, /created .*\.env from \.env\.example, with a random FORKYARD_PUSH_SECRET/)
  assert.match(up.out, new RegExp(`ready: http://127\\.0\\.0\\.1:${port}/`))
  process.stdout.write(`# make up on a fresh clone (npm ci from the machine's cache, build, start): ${upSeconds.toFixed(1)} s\n`)
  const url = (p: string): string => `http://127.0.0.1:${port}${p}`

  // The example app through nginx: a pipeline accepted, with a token, and run to done.
  const res = await fetch(url('/api/pipelines'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'fresh', steps: [{ name: 'lint', kind: 'sleep', ms: 50 }] }) })
  const accepted = (await res.json()) as { id: string; token: string | null }
  assert.equal(res.status, 202, JSON.stringify(accepted))
  assert.match(String(accepted.token), /^v1\./)
  const state = await until('the pipeline done', async () => {
    const r = (await (await fetch(url(`/api/pipelines/${accepted.id}`))).json()) as { state: string }
    return ['done', 'failed'].includes(r.state) ? r.state : null
  }, 20_000, 100)
  assert.equal(state, 'done')
  assert.equal((await fetch(url('/static/forkyard/push-client.js'))).status, 200)

  // An edit of .env reaches the running stack within a second.
  const before = await readyz(url('/readyz'))
  assert.equal(before.status, 200)
  const editedAt = Date.now()
  writeFileSync(join(dir, '.env'), `${readFileSync(join(dir, '.env'), 'utf8')}\nFORKYARD_REQUEST_TIMEOUT=20s\n`)
  const after = await until('a new config version in /readyz', async () => {
    const r = await readyz(url('/readyz'))
    return r.version !== '' && r.version !== before.version ? r : null
  }, 5000, 50)
  assert.ok(Date.now() - editedAt < 1500, `applied after ${Date.now() - editedAt} ms`)

  const reload = make('reload')
  assert.equal(reload.status, 0, reload.out)
  assert.match(reload.out, /reload complete/)
  const status = make('status')
  assert.equal(status.status, 0, status.out)
  // One row per process (forkyard ps): the supervised programs running, the workers ready.
  for (const name of ['supervisord', 'nginx', 'server', 'push', 'bridge']) assert.match(status.out, new RegExp(`^${name}\\s+\\d+\\s+running\\s`, 'm'), name)
  assert.match(status.out, /^server\/w\d+\s+\d+\s+ready\s/m)
  assert.match(status.out, new RegExp(`config ${after.version}`))

  // Nothing to redo on a second make up.
  const dry = spawnSync('make', ['-n', 'up'], { cwd: dir, env, encoding: 'utf8' })
  assert.deepEqual(dry.stdout.trim().split('\n'), ['node dist/bin/forkyard.js up'], 'a second make up only starts')

  const down = make('down')
  assert.equal(down.status, 0, down.out)
  assert.match(down.out, /stopped/)
  assert.deepEqual(processesIn(dir), [], 'no process left running in the clone')
  failed = false
})
