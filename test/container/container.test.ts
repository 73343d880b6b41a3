/**
 * The stack in its container, end to end (`make test-container`: test/container/run.sh provides
 * the engine, the base image and the built image first). `forkyard up` through Docker Compose on
 * a free port with its own .env and log directory, then through the published port on 127.0.0.1:
 * health and readiness, an app request, a WebSocket message published by a worker, kill -9 of
 * each of nginx, server, push and bridge inside the container (readiness red, then green), the
 * JSON logs on the host with one request id in nginx.log and server.log, the hardening (non-root,
 * read-only root, no capabilities, no-new-privileges, 45 s grace), orphans reaped by supervisord
 * as PID 1, an edit of the bind-mounted .env applied live, `forkyard reload` and `ps` into the
 * container, and `forkyard down` leaving nothing.
 * On failure it prints the container's output and the .stdio files.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { containerGid, containerLayout, containerUid, probe } from '../../server/stack/docker.js'
import { connect } from '../helpers/push.js'
import { bin, freePort, root, sleep, tempDir, until } from '../helpers/server.js'

interface Run {
  status: number | null
  out: string
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000): Run {
  const r = spawnSync(cmd, args, { env, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? `\n${r.error.message}` : ''}` }
}

/** Through probe(): a fetch bounded by AbortSignal.timeout can hang forever on Docker's port proxy. */
async function readyz(url: string): Promise<{ status: number; body: { ready?: boolean; components?: Record<string, { ok: boolean }> } }> {
  try {
    const r = await probe(url, 3000)
    let body: { ready?: boolean } = {}
    try {
      body = JSON.parse(r.text) as { ready?: boolean }
    } catch {
      // not JSON: status only
    }
    return { status: r.status, body }
  } catch {
    return { status: 0, body: {} }
  }
}

/** pid, state and parent pid of every process in the container, from /proc (no ps in the image). */
interface Proc {
  pid: number
  comm: string
  state: string
  ppid: number
}

function parseStat(text: string): Proc[] {
  const out: Proc[] = []
  for (const line of text.split('\n')) {
    const open = line.indexOf(' (')
    const close = line.lastIndexOf(') ')
    if (open < 0 || close < open) continue
    const [state, ppid] = line.slice(close + 2).split(' ')
    out.push({ pid: Number(line.slice(0, open)), comm: line.slice(open + 2, close), state: state ?? '?', ppid: Number(ppid) })
  }
  return out
}

function logLines(dir: string, svc: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = []
  for (const f of readdirSync(dir).filter((f) => f === `${svc}.log` || f.startsWith(`${svc}.log.`))) {
    for (const text of readFileSync(join(dir, f), 'utf8').split('\n')) {
      if (text === '') continue
      let line: Record<string, unknown>
      try {
        line = JSON.parse(text) as Record<string, unknown>
      } catch {
        throw new Error(`${f}: a line that is not JSON: ${text.slice(0, 300)}`)
      }
      out.push(line)
    }
  }
  return out
}

test('the Dockerfile header lists every variable of .env.example', () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
  const header = dockerfile.slice(0, dockerfile.indexOf('\nFROM '))
  const names = [...readFileSync(join(root, '.env.example'), 'utf8').matchAll(/^([A-Z][A-Z0-9_]*)=/gm)].map((m) => m[1]!)
  assert.ok(names.length > 0)
  assert.deepEqual(names.filter((n) => !new RegExp(`^#\\s+${n}=`, 'm').test(header)), [], 'variables missing from the Dockerfile header')
})

test('the stack in a container: up through Compose, requests, WebSocket, kill -9 of each process, logs, non-root, zombies reaped, down', { timeout: 15 * 60_000 }, async (t: TestContext) => {
  const dir = tempDir('fy-container-')
  const logDir = join(dir, 'logs')
  const dataDir = join(dir, 'data')
  mkdirSync(logDir)
  const port = await freePort()
  const project = `fytest${process.pid}`
  // The test's own .env: .env.example with a smaller stack and quicker signals.
  const settings: Record<string, string> = { FORKYARD_WORKERS: '2', FORKYARD_GRACEFUL_TIMEOUT: '10s', FORKYARD_PUSH_HEARTBEAT_STALE: '2s' }
  let dotenv = readFileSync(join(root, '.env.example'), 'utf8')
  for (const [k, v] of Object.entries(settings)) dotenv = dotenv.replace(new RegExp(`^${k}=.*$`, 'm'), `${k}=${v}`)
  const envFile = join(dir, '.env')
  writeFileSync(envFile, dotenv)

  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    ...(process.env.DOCKER_HOST !== undefined ? { DOCKER_HOST: process.env.DOCKER_HOST } : {}),
    COMPOSE_PROJECT_NAME: project,
    DOCKER_BUILDKIT: '0',
    COMPOSE_DOCKER_CLI_BUILD: '0',
    FORKYARD_DOCKER: '1',
    FORKYARD_PORT: String(port),
    FORKYARD_LOG_DIR: logDir,
    FORKYARD_HOST_DATA_DIR: dataDir,
  }
  const cli = (args: string[], timeoutMs = 120_000): Run => sh(process.execPath, [bin, ...args, '--env-file', envFile], { ...env }, timeoutMs)
  const docker = (args: string[], timeoutMs = 60_000): Run => sh('docker', args, env, timeoutMs)
  const projectFilter = ['--filter', `label=com.docker.compose.project=${project}`]
  const url = (path: string): string => `http://127.0.0.1:${port}${path}`
  let id = ''
  const exec = (script: string): Run => docker(['exec', id, 'sh', '-c', script])

  let failed = false
  const step = async (name: string, fn: () => Promise<void> | void): Promise<void> => {
    await t.test(name, async () => {
      if (failed) return assert.fail('skipped: an earlier step failed')
      try {
        await fn()
      } catch (err) {
        failed = true
        throw err
      }
    })
  }

  t.after(() => {
    if (failed) {
      const target = id !== '' ? id : `${project}_app_1`
      process.stderr.write(`\n--- docker logs ${target} ---\n${docker(['logs', '--tail', '200', target]).out}\n`)
      process.stderr.write(`--- docker inspect State ---\n${docker(['inspect', '-f', '{{json .State}}', target]).out}\n`)
      if (existsSync(logDir)) {
        for (const f of readdirSync(logDir).filter((f) => f.endsWith('.stdio'))) {
          process.stderr.write(`--- ${f} ---\n${readFileSync(join(logDir, f), 'utf8').slice(-4000)}\n`)
        }
      }
    }
    // Whatever happened: no container of this project left behind.
    const left = docker(['ps', '-a', '-q', ...projectFilter]).out.trim()
    if (left !== '') {
      const down = cli(['down'], 120_000)
      if (down.status !== 0) docker(['rm', '-f', ...left.split('\n')])
    }
    // The .env, logs and data stay for a look after a failure.
    if (failed) process.stderr.write(`the test's .env, logs and data: ${dir}\n`)
    else rmSync(dir, { recursive: true, force: true })
  })

  await step('forkyard up builds and starts the container through Compose, and waits until ready', () => {
    const started = Date.now()
    const up = cli(['up'], 14 * 60_000)
    assert.equal(up.status, 0, `forkyard up failed:\n${up.out.slice(-6000)}`)
    assert.match(up.out, /ready \(container\): http:\/\/127\.0\.0\.1:\d+\//, up.out.slice(-2000))
    id = docker(['ps', '-q', ...projectFilter]).out.trim()
    assert.match(id, /^[0-9a-f]{12}$/, `one running container of project ${project}`)
    process.stdout.write(`# forkyard up (compose up --build, cached image) ready in ${((Date.now() - started) / 1000).toFixed(1)} s\n`)
  })

  await step('the container is hardened as docker-compose.yml and the Dockerfile say', () => {
    const inspect = JSON.parse(docker(['inspect', id]).out) as [{ Config: { Env: string[]; User: string; StopTimeout?: number; StopSignal?: string; Healthcheck?: { Test: string[] } }; HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] | null; SecurityOpt: string[] | null; Tmpfs: Record<string, string> | null; RestartPolicy: { Name: string } } }]
    const { Config: c, HostConfig: h } = inspect[0]
    const envKeys = new Set(c.Env.map((e) => e.slice(0, e.indexOf('='))))
    for (const k of containerLayout) assert.ok(envKeys.has(k), `the image sets ${k} (server/stack/docker.ts containerLayout)`)
    assert.ok(c.Env.includes('FORKYARD_READY_CHECKS=workers,push,supervisor'))
    assert.equal(c.User, `${containerUid}:${containerGid}`)
    assert.equal(c.StopTimeout, 45, 'stop_grace_period 45s')
    assert.equal(c.StopSignal, 'SIGTERM')
    assert.ok(c.Healthcheck?.Test.join(' ').includes('/readyz'), JSON.stringify(c.Healthcheck))
    assert.equal(h.ReadonlyRootfs, true)
    assert.deepEqual(h.CapDrop, ['ALL'])
    assert.deepEqual(h.SecurityOpt, ['no-new-privileges:true'])
    assert.ok(h.Tmpfs !== null && '/tmp' in h.Tmpfs, JSON.stringify(h.Tmpfs))
    assert.equal(h.RestartPolicy.Name, 'unless-stopped')
  })

  await step('the health check turns healthy', async () => {
    await until('container health "healthy"', () => docker(['inspect', '-f', '{{.State.Health.Status}}', id]).out.trim() === 'healthy', 150_000, 1000)
  })

  let reqId = ''
  let helloId = ''
  await step('/healthz, /readyz with every component, the app, and a WebSocket message published by a worker', async () => {
    assert.equal((await fetch(url('/healthz'))).status, 200)
    const ready = await readyz(url('/readyz'))
    assert.equal(ready.status, 200, JSON.stringify(ready.body))
    const components = ready.body.components ?? {}
    for (const c of ['workers', 'push', 'bridge', 'supervisor', 'config']) assert.equal(components[c]?.ok, true, `${c} ready: ${JSON.stringify(components)}`)
    // The page at / (whatever the example app and nginx make of it).
    const hello = await fetch(url('/'))
    assert.equal(hello.status, 200, await hello.text())
    helloId = hello.headers.get('x-request-id') ?? ''
    assert.match(helloId, /^[0-9a-f]{32}$/)

    const client = connect(`ws://127.0.0.1:${port}/ws`)
    try {
      await client.opened
      client.send({ type: 'subscribe', channel: 'news' })
      await until('subscribed', () => client.messages.some((m) => m.type === 'subscribed'))
      const published = await fetch(url('/api/notify'), { method: 'POST', body: JSON.stringify({ channel: 'news', message: 'x' }) })
      assert.equal(published.status, 202, await published.text())
      reqId = published.headers.get('x-request-id') ?? ''
      const msg = await until('message through nginx', () => client.messages.find((m) => m.type === 'message'))
      assert.deepEqual(msg.data, { message: 'x' })
      assert.equal(msg.reqId, reqId)
    } finally {
      client.ws.close()
    }
  })

  await step('kill -9 of each of nginx, server, push, bridge inside the container: readiness red, then green', async () => {
    const programPid = (name: string): number | null => {
      const m = /RUNNING\s+pid (\d+)/.exec(exec(`supervisorctl -c /app/supervisor/supervisord.conf status ${name}`).out)
      return m === null ? null : Number(m[1])
    }
    const nginxPid = (): number | null => {
      const n = Number(exec('cat /tmp/forkyard-run/nginx.pid').out.trim())
      return Number.isInteger(n) && n > 0 ? n : null
    }
    const victims: [string, () => number | null][] = [
      ['nginx', nginxPid],
      ['server', () => programPid('server')],
      ['push', () => programPid('push')],
      ['bridge', () => programPid('bridge')],
    ]
    for (const [name, pidOf] of victims) {
      const pid = pidOf()
      assert.ok(pid !== null, `${name} pid`)
      const killed = exec(`kill -9 ${pid}`)
      assert.equal(killed.status, 0, `kill -9 ${pid} (${name}): ${killed.out}`)
      await until(`${name}: readiness red`, async () => (await readyz(url('/readyz'))).status !== 200, 15_000, 20)
      await until(`${name}: readiness green again`, async () => (await readyz(url('/readyz'))).status === 200, 90_000, 250)
      const again = pidOf()
      assert.ok(again !== null && again !== pid, `${name} was restarted: ${pid} -> ${again}`)
    }
  })

  await step('the JSON logs on the host: every line parses, one request id in nginx.log and server.log', async () => {
    assert.ok(reqId !== '')
    const traced = async (svc: string): Promise<boolean> => logLines(logDir, svc).some((l) => l.reqId === reqId)
    await until('request id in nginx.log and server.log', async () => (await traced('nginx')) && (await traced('server')), 15_000, 200)
    assert.ok(logLines(logDir, 'nginx').some((l) => l.reqId === helloId), `GET / (${helloId}) in nginx.log`)
    const served = logLines(logDir, 'server').find((l) => l.reqId === reqId && l.msg === 'request')
    assert.equal(served?.status, 202, `POST /api/notify (${reqId}) has its access line in server.log`)
    for (const svc of ['nginx', 'server', 'push', 'bridge']) {
      const lines = logLines(logDir, svc)
      assert.ok(lines.length > 0, `${svc}.log has lines`)
      for (const l of lines) {
        assert.equal(l.svc, svc, `${svc}.log has one writer`)
        assert.equal(typeof l.time, 'string')
        assert.equal(typeof l.msg, 'string')
      }
    }
    const nginxAccess = logLines(logDir, 'nginx').find((l) => l.reqId === reqId && l.msg === 'request')
    assert.equal(nginxAccess?.path, '/api/notify')
    assert.equal(nginxAccess?.status, 202)
  })

  await step('every process runs as the non-root container user', () => {
    const ids = exec('id -u; id -g').out.trim().split('\n')
    assert.deepEqual(ids, [String(containerUid), String(containerGid)])
    const status = exec('for f in /proc/[0-9]*/status; do grep -H "^Uid:" "$f" 2>/dev/null; done')
    assert.equal(status.status, 0, status.out)
    const uids = status.out.trim().split('\n').map((l) => l.split(/\s+/).slice(1, 5))
    assert.ok(uids.length >= 8, status.out)
    for (const u of uids) assert.deepEqual(u, Array(4).fill(String(containerUid)), status.out)
    assert.match(exec('tr "\\0" " " < /proc/1/cmdline').out, /supervisord -n -c \/app\/supervisor\/supervisord\.conf/, 'supervisord is PID 1')
  })

  await step('orphans are reparented to supervisord (PID 1) and reaped: no zombie remains', async () => {
    const procs = (): Proc[] => parseStat(exec('for f in /proc/[0-9]*/stat; do cat "$f" 2>/dev/null; echo; done').out)
    // Three orphans: their shell exits at once, they exit a second later.
    const started = exec('for i in 1 2 3; do sleep 1 >/dev/null 2>&1 & echo $!; done')
    const orphans = started.out.trim().split('\n').map(Number)
    assert.equal(orphans.length, 3, started.out)
    const seen = procs().filter((p) => orphans.includes(p.pid))
    for (const p of seen) assert.equal(p.ppid, 1, `orphan ${p.pid} reparented to PID 1: ${JSON.stringify(p)}`)
    await sleep(1500)
    await until('orphans reaped and no zombie left', () => {
      const all = procs()
      return all.length > 0 && !all.some((p) => p.state === 'Z' || orphans.includes(p.pid))
    }, 15_000, 250)
    assert.match(docker(['logs', id]).out, /reaped unknown pid/)
  })

  await step('an edit of the bind-mounted .env reaches the running stack', async () => {
    // Written in place (same inode): a single-file bind mount does not follow a replaced file.
    writeFileSync(envFile, readFileSync(envFile, 'utf8').replace(/^FORKYARD_LOG_LEVEL=.*$/m, 'FORKYARD_LOG_LEVEL=debug'))
    assert.match(exec('grep "^FORKYARD_LOG_LEVEL=" /app/.env').out, /=debug/)
    const applied = (svc: string): boolean => logLines(logDir, svc).some((l) => l.msg === 'config applied' && JSON.stringify(l.changed ?? '').includes('FORKYARD_LOG_LEVEL'))
    await until('config applied in server, push and bridge', () => ['server', 'push', 'bridge'].every(applied), 20_000, 200)
  })

  await step('forkyard ps and reload reach the container', () => {
    const ps = cli(['ps'])
    assert.equal(ps.status, 0, ps.out)
    for (const name of ['bridge', 'nginx', 'push', 'server']) assert.match(ps.out, new RegExp(`${name}\\s+RUNNING`), ps.out)
    assert.match(ps.out, /2\/2 workers ready/, ps.out)
    const reload = cli(['reload'], 5 * 60_000)
    assert.equal(reload.status, 0, reload.out)
    assert.match(reload.out, /reload complete/)
  })

  await step('forkyard down stops the container gracefully and leaves nothing', () => {
    const down = cli(['down'], 120_000)
    assert.equal(down.status, 0, down.out)
    assert.equal(docker(['ps', '-a', '-q', ...projectFilter]).out.trim(), '', 'no container left')
    assert.equal(docker(['network', 'ls', '-q', ...projectFilter]).out.trim(), '', 'no network left')
    const stopped = readFileSync(join(logDir, 'supervisord.stdio'), 'utf8')
    for (const name of ['nginx', 'server', 'push', 'bridge']) assert.match(stopped, new RegExp(`stopped: ${name} \\(exit status 0\\)`), `${name} stopped cleanly`)
  })
})
