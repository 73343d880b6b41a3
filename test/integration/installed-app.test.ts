/**
 * The kit installed the way users install it: `npm pack`, then a real `npm install` of the tarball
 * into an app's own directory (its own package.json, its own copy of the package), an app module
 * that imports 'forkyard' and defines a task and a singleton, publishes and reads a setting, and
 * the stack started from the app's directory with README's command (`npx forkyard up`). Through
 * nginx: requests, the task run to done by the kit's jobs process, the singleton running once, a
 * WebSocket client receiving the published message, the browser client at its documented path,
 * and a .env edit reaching the workers; `npx forkyard down` leaves nothing.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { isAlive } from '../../server/process/pidfile.js'
import { connect } from '../helpers/push.js'
import { freePort, root, tempDir, until } from '../helpers/server.js'

const appSource = `import { appendFileSync } from 'node:fs'
import { config, publish, requestId, singleton, tasks } from 'forkyard'

tasks.define('greet', async (payload, ctx) => {
  await ctx.progress({ step: 'greeting' })
  return { greeting: \`\${config.get('GREETING')} \${payload.name}\` }
}, { retries: 0 })

singleton('ticker', ({ signal }) => {
  appendFileSync('singleton-starts.txt', \`\${process.pid}\\n\`)
  const timer = setInterval(() => {}, 1000)
  signal.addEventListener('abort', () => clearInterval(timer))
  return () => clearInterval(timer)
})

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body))
}

export default async function app(req, res) {
  const url = new URL(req.url, 'http://x')
  if (url.pathname === '/greeting') return json(res, 200, { greeting: config.get('GREETING'), pid: process.pid })
  if (req.method === 'POST' && url.pathname === '/tasks') {
    const { id } = await tasks.enqueue('greet', { name: 'app' }, { reqId: requestId(req) })
    return json(res, 202, { id })
  }
  if (url.pathname.startsWith('/tasks/')) return json(res, 200, await tasks.get(url.pathname.slice(7)))
  if (req.method === 'POST' && url.pathname === '/publish') {
    const { offset } = await publish('news', { hello: 'from the app' })
    return json(res, 202, { offset })
  }
  json(res, 404, { error: 'no route' })
}
`

function run(cmd: string, args: string[], cwd: string, timeoutMs: number, extra: Record<string, string> = {}): { status: number | null; out: string } {
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', npm_config_update_notifier: 'false', ...extra }
  const r = spawnSync(cmd, args, { cwd, env, encoding: 'utf8', timeout: timeoutMs })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? `\n${r.error.message}` : ''}` }
}

function setEnv(file: string, values: Record<string, string>): void {
  let text = readFileSync(file, 'utf8')
  for (const [k, v] of Object.entries(values)) {
    const line = `${k}=${v}`
    text = new RegExp(`^${k}=.*$`, 'm').test(text) ? text.replace(new RegExp(`^${k}=.*$`, 'm'), line) : `${text}\n${line}\n`
  }
  writeFileSync(file, text)
}

async function getJson(url: string, init: RequestInit = {}): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(url, { ...init, signal: AbortSignal.timeout(5000) })
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> }
}

test('the kit installed from its tarball into an app directory runs that app: tasks, singleton, publish, config, down', { timeout: 6 * 60_000 }, async (t) => {
  const work = tempDir('fy-installed-')
  const appDir = join(work, 'myapp')
  mkdirSync(appDir)
  let stackStarted = false
  let failed = true
  t.after(() => {
    if (stackStarted) {
      const down = run('npx', ['--no-install', 'forkyard', 'down'], appDir, 120_000, { FORKYARD_DOCKER: '0' })
      if (down.status !== 0) process.stderr.write(`forkyard down failed:\n${down.out}\n`)
    }
    if (failed && existsSync(join(appDir, 'logs'))) {
      for (const f of readdirSync(join(appDir, 'logs')).filter((f) => f.endsWith('.stdio'))) process.stderr.write(`--- ${f} ---\n${readFileSync(join(appDir, 'logs', f), 'utf8').slice(-3000)}\n`)
    }
    if (failed) process.stderr.write(`the app directory stays for a look: ${appDir}\n`)
    else rmSync(work, { recursive: true, force: true })
  })

  // dist/ is built by make; --ignore-scripts keeps npm pack from building it again.
  const pack = run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root, 120_000)
  assert.equal(pack.status, 0, pack.out)
  const packed = JSON.parse(pack.out.slice(pack.out.indexOf('['))) as [{ filename: string; files: { path: string }[] }]
  const files = packed[0].files.map((f) => f.path)
  for (const f of ['dist/bin/forkyard.js', 'nginx/nginx.conf.template', 'supervisor/supervisord.conf', 'client/push-client.js', 'client/push-client.d.ts', '.env.example']) assert.ok(files.includes(f), `the package ships ${f}`)
  assert.equal(files.filter((f) => f.endsWith('.map')).length, 0, 'no source maps in the package')

  writeFileSync(join(appDir, 'package.json'), JSON.stringify({ name: 'myapp', version: '1.0.0', private: true, type: 'module', main: 'app.mjs' }, null, 2))
  writeFileSync(join(appDir, 'app.mjs'), appSource)
  // A real install of the tarball (a copy in node_modules, not a link), dependencies from the registry.
  const install = run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(work, packed[0].filename)], appDir, 300_000)
  assert.equal(install.status, 0, install.out)
  assert.ok(existsSync(join(appDir, 'node_modules/forkyard/dist/index.js')))
  const clientImport = run(process.execPath, ['--input-type=module', '-e', "import('forkyard/client').then((m) => console.log(typeof m.PushClient))"], appDir, 30_000)
  assert.equal(clientImport.out.trim(), 'function', `forkyard/client exports PushClient: ${clientImport.out}`)

  const envFile = join(appDir, '.env')
  // Before .env exists, `check` says what is wrong: the default app is the kit's example.
  const check = run('npx', ['--no-install', 'forkyard', 'check'], appDir, 60_000)
  assert.equal(check.status, 2, check.out)
  assert.match(check.out, /Expected FORKYARD_APP to name the app module/)
  assert.ok(!existsSync(envFile), 'check does not create .env')

  // The first `up` creates the app's .env (its own module, a push secret) and starts. This test's
  // ports come from the environment, as an operator's would (they win over .env).
  const port = await freePort()
  const pushPort = await freePort()
  const operator = { FORKYARD_PORT: String(port), FORKYARD_PUSH_BIND: `127.0.0.1:${pushPort}`, FORKYARD_DOCKER: '0', FORKYARD_WORKERS: '2', FORKYARD_GRACEFUL_TIMEOUT: '10s', FORKYARD_PUSH_HEARTBEAT_STALE: '2s' }
  stackStarted = true
  const up = run('npx', ['--no-install', 'forkyard', 'up'], appDir, 180_000, operator)
  assert.equal(up.status, 0, up.out)
  assert.match(up.out, new RegExp(`ready: http://127\\.0\\.0\\.1:${port}/`))
  const dotenv = readFileSync(envFile, 'utf8')
  assert.match(dotenv, /^FORKYARD_APP=app\.mjs$/m)
  assert.match(dotenv, /^FORKYARD_PUSH_SECRET=[0-9a-f]{64}$/m)
  const url = (p: string): string => `http://127.0.0.1:${port}${p}`

  // Served through nginx, by the app in the app's directory; a key added to .env arrives.
  const before = await getJson(url('/greeting'))
  assert.equal(before.status, 200)
  assert.equal(before.body.greeting, undefined)
  setEnv(envFile, { GREETING: 'hello' })
  await until('GREETING=hello in the workers', async () => (await getJson(url('/greeting'))).body.greeting === 'hello', 3000, 50)
  const client = await fetch(url('/static/forkyard/push-client.js'))
  assert.equal(client.status, 200)
  assert.match(await client.text(), /export class PushClient/)

  // The task defined in the app's copy of the package runs in the kit's jobs process.
  const queued = await getJson(url('/tasks'), { method: 'POST' })
  assert.equal(queued.status, 202, JSON.stringify(queued.body))
  const done = await until('the task done', async () => {
    const r = await getJson(url(`/tasks/${String(queued.body.id)}`))
    return r.body.state === 'done' || r.body.state === 'failed' ? r.body : null
  }, 20_000, 100)
  assert.equal(done.state, 'done', JSON.stringify(done))
  assert.deepEqual(done.result, { greeting: 'hello app' })

  // The singleton: started once, in the jobs process, and reported ready.
  const ready = await until('/readyz 200 with the singleton running', async () => {
    const r = await getJson(url('/readyz'))
    return r.status === 200 ? r.body : null
  }, 30_000, 200)
  const jobs = (ready.components as Record<string, { pid?: number; singletons?: { name: string; state: string; pid: number }[] }>).jobs
  assert.deepEqual(jobs?.singletons?.map((s) => [s.name, s.state]), [['ticker', 'running']])
  const starts = readFileSync(join(appDir, 'singleton-starts.txt'), 'utf8').trim().split('\n')
  assert.deepEqual(starts, [String(jobs?.pid)], 'one start, in the jobs process')

  // A message published by the app reaches a WebSocket client through nginx.
  const ws = connect(`ws://127.0.0.1:${port}/ws`)
  t.after(() => ws.ws.close())
  await ws.opened
  ws.send({ type: 'subscribe', channel: 'news' })
  await until('subscribed', () => ws.messages.find((m) => m.type === 'subscribed'), 5000)
  const published = await getJson(url('/publish'), { method: 'POST' })
  assert.equal(published.status, 202, JSON.stringify(published.body))
  const msg = await until('the message', () => ws.messages.find((m) => m.type === 'message'), 5000)
  assert.deepEqual(msg.data, { hello: 'from the app' })

  // An edit of the app's .env reaches every worker and the jobs process within a second (each logs
  // the version it applied), and the app answers with it through nginx.
  const editedAt = Date.now()
  setEnv(envFile, { GREETING: 'bonjour' })
  const applied = await until('both workers and the jobs process applied the edit', () => {
    const lines = readFileSync(join(appDir, 'logs/server.log'), 'utf8').split('\n').filter((l) => l.includes('"config applied"')).map((l) => JSON.parse(l) as { role?: string; pid: number; time: string })
    const after = lines.filter((l) => Date.parse(l.time) >= editedAt - 50)
    const workers = new Set(after.filter((l) => l.role === 'worker').map((l) => l.pid))
    return workers.size === 2 && after.some((l) => l.role === 'jobs') ? after : null
  }, 5000, 50)
  for (const l of applied) assert.ok(Date.parse(l.time) - editedAt <= 1000, `${String(l.role)} ${l.pid} applied ${Date.parse(l.time) - editedAt} ms after the edit`)
  assert.equal((await getJson(url('/greeting'))).body.greeting, 'bonjour')
  ws.ws.close()

  // down leaves no process of the stack.
  const pids = readFileSync(join(appDir, 'run/supervisord.pid'), 'utf8').trim()
  const down = run('npx', ['--no-install', 'forkyard', 'down'], appDir, 120_000, { FORKYARD_DOCKER: '0' })
  assert.equal(down.status, 0, down.out)
  stackStarted = false
  assert.equal(isAlive(Number(pids)), false)
  assert.equal(isAlive(Number(jobs?.pid)), false, 'the jobs process is gone')
  failed = false
})
