/**
 * The stack in its container, end to end, started the way users start it (`make test-container`:
 * test/container/run.sh provides the engine, the base image and a first build). Every case works
 * on a fresh `git clone` of this repository (its committed HEAD) in a temporary directory, with a
 * free port and its own compose project:
 *
 * - `make up` as root with no .env: .env created (readable by the container's group, not by
 *   others), the container built, started and waited for; then through the published port on
 *   127.0.0.1: health and readiness, an app request (a pipeline runs to done), a WebSocket message
 *   published by a worker, kill -9 of each of nginx, server, push and bridge inside the container
 *   (readiness red, then green), the JSON logs on the host with one request id in nginx.log and
 *   server.log, the hardening (started as root with CHOWN/SETUID/SETGID only, every process of the
 *   stack non-root with no capability, read-only root, no-new-privileges, 45 s grace), orphans
 *   reaped by supervisord as PID 1, an edit of the bind-mounted .env applied live, `make status`, `make top`, `forkyard status`
 *   and `make reload` into the container, a bad value written into the running stack's .env shown
 *   in `docker compose logs` when a program restarts, `make up` on the running container refusing
 *   a .env that only the container can judge (FORKYARD_APP outside the image), and `make down`
 *   leaving nothing.
 * - A bad value in .env: `make up` fails fast with the key and the value in its output, whether
 *   the host sees it (nothing is started) or only the container does (FORKYARD_APP outside the
 *   image: the entrypoint's `forkyard check` refuses it, `make up` stops at the first restart and
 *   `docker compose logs` shows the same reason).
 * - `cp .env.example .env` and plain `docker compose up -d --build` (or docker-compose), no make:
 *   Docker creates ./logs as root, the entrypoint hands it to uid 10001; healthy, the app answers,
 *   the port is published on 127.0.0.1 only; `down` leaves nothing.
 *
 * On failure it prints the container's output, its state and the .stdio files, and keeps the
 * temporary directory (named); after a pass it removes it. Phase timings are printed at the end.
 */
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { appendFileSync, copyFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { containerGid, containerLayout, containerUid, findCompose, probe } from '../../server/stack/docker.js'
import { connect } from '../helpers/push.js'
import { freePort, root, sleep, tempDir, until } from '../helpers/server.js'

interface Run {
  status: number | null
  out: string
}

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 60_000, cwd?: string): Run {
  const r = spawnSync(cmd, args, { env, cwd, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? `\n${r.error.message}` : ''}` }
}

const asRoot = process.getuid?.() === 0
/** The uid:gid the stack runs as in the container: the image's user under root, else the caller. */
const stackUser = asRoot ? `${containerUid}:${containerGid}` : `${process.getuid?.()}:${process.getgid?.()}`

/** The environment a user's shell would have: nothing of this test run's make, compose or forkyard settings. */
function userEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!/^(FORKYARD_|COMPOSE_|MAKE|MFLAGS$)/.test(k)) env[k] = v
  return { ...env, DOCKER_BUILDKIT: '0', COMPOSE_DOCKER_CLI_BUILD: '0', ...extra }
}

/** A fresh clone of this repository's committed HEAD, as a user gets it. */
function cloneKit(dir: string): string {
  const kit = join(dir, 'kit')
  const r = sh('git', ['clone', '--quiet', root, kit], process.env, 120_000)
  assert.equal(r.status, 0, `git clone ${root}: ${r.out}`)
  return kit
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

/** pid, state and parent pid of every process in the container, from /proc. */
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

/** Sets KEY=value in a .env in place (same inode: the container's single-file bind mount follows it). */
function setDotenv(file: string, key: string, value: string): void {
  const text = readFileSync(file, 'utf8')
  const re = new RegExp(`^${key}=.*$`, 'm')
  writeFileSync(file, re.test(text) ? text.replace(re, `${key}=${value}`) : `${text}\n${key}=${value}\n`)
}

/**
 * One end-to-end case: named steps (after a failed step the rest report "skipped"), the phase
 * timings, and the clean-up: no container of the project left behind; the temporary directory
 * removed after a pass, kept and named after a failure, with the container's output printed.
 */
function scenario(t: TestContext, name: string, project: string, dir: string, logDir: () => string, down: () => void) {
  let failed = false
  const timings: string[] = []
  const docker = (args: string[], timeoutMs = 60_000): Run => sh('docker', args, process.env, timeoutMs)
  const projectFilter = ['--filter', `label=com.docker.compose.project=${project}`]
  const step = async (title: string, fn: () => Promise<void> | void): Promise<void> => {
    const started = Date.now()
    await t.test(title, async () => {
      if (failed) return assert.fail('skipped: an earlier step failed')
      try {
        await fn()
      } catch (err) {
        failed = true
        throw err
      }
    })
    timings.push(`${name}: ${title.slice(0, 70)}: ${((Date.now() - started) / 1000).toFixed(1)} s`)
  }
  t.after(() => {
    if (failed) {
      for (const id of docker(['ps', '-a', '-q', ...projectFilter]).out.trim().split('\n').filter((l) => l !== '')) {
        process.stderr.write(`\n--- docker logs ${id} ---\n${docker(['logs', '--tail', '200', id]).out}\n`)
        process.stderr.write(`--- docker inspect State ---\n${docker(['inspect', '-f', '{{json .State}}', id]).out}\n`)
      }
      const logs = logDir()
      if (existsSync(logs)) {
        for (const f of readdirSync(logs).filter((f) => f.endsWith('.stdio'))) {
          process.stderr.write(`--- ${f} ---\n${readFileSync(join(logs, f), 'utf8').slice(-4000)}\n`)
        }
      }
    }
    // Whatever happened: no container of this project left behind.
    const left = docker(['ps', '-a', '-q', ...projectFilter]).out.trim()
    if (left !== '') {
      down()
      const still = docker(['ps', '-a', '-q', ...projectFilter]).out.trim()
      if (still !== '') docker(['rm', '-f', ...still.split('\n')])
      docker(['network', 'prune', '-f', '--filter', `label=com.docker.compose.project=${project}`])
    }
    for (const line of timings) t.diagnostic(`[timing] ${line}`)
    const work = process.env.FORKYARD_CONTAINER_WORK
    if (work !== undefined && existsSync(work)) appendFileSync(join(work, 'timings.txt'), timings.map((l) => `test-container: [timing]   ${l}\n`).join(''))
    if (failed) process.stderr.write(`${name}: the clone, its .env, logs and data are kept in ${dir}\n`)
    else rmSync(dir, { recursive: true, force: true })
  })
  return { step, docker, projectFilter, failed: () => failed }
}

test('make up on a fresh clone: .env created, the container healthy and hardened, requests, kill -9, logs, non-root, live .env, bad values, make down', { timeout: 20 * 60_000 }, async (t: TestContext) => {
  const dir = tempDir('fy-container-')
  const kit = cloneKit(dir)
  const logDir = join(kit, 'logs')
  const envFile = join(kit, '.env')
  const port = await freePort()
  const project = `fyup${process.pid}`
  // What a user types, plus a free port and a project of its own (so that nothing else on the
  // machine is touched); FORKYARD_DOCKER=1 so that a missing engine fails instead of going native.
  const env = userEnv({ COMPOSE_PROJECT_NAME: project, FORKYARD_PORT: String(port), FORKYARD_DOCKER: '1' })
  const make = (target: string, timeoutMs = 120_000): Run => sh('make', ['--no-print-directory', target], env, timeoutMs, kit)
  const compose = findCompose(env)
  assert.ok(compose !== null, 'a compose command answers')
  const composeLogs = (): string => sh(compose[0]!, [...compose.slice(1), '-p', project, 'logs', '--no-color'], env, 60_000, kit).out
  const { step, docker, projectFilter } = scenario(t, 'make up', project, dir, () => logDir, () => void make('down', 180_000))
  const url = (path: string): string => `http://127.0.0.1:${port}${path}`
  const [uid, gid] = stackUser.split(':')
  let id = ''
  const exec = (script: string): Run => docker(['exec', '-u', stackUser, id, 'sh', '-c', script])
  const uncommitted = sh('git', ['status', '--porcelain', '--untracked-files=no'], process.env, 30_000, root).out.trim()
  if (uncommitted !== '') t.diagnostic(`uncommitted changes in ${root} are not in the clone (it tests HEAD)`)

  await step('make up with no .env: creates it, builds and starts the container through Compose, waits until ready', () => {
    assert.ok(!existsSync(envFile), 'a fresh clone has no .env')
    const started = Date.now()
    const up = make('up', 14 * 60_000)
    assert.equal(up.status, 0, `make up failed:\n${up.out.slice(-6000)}`)
    assert.match(up.out, /created .*\.env from \.env\.example/, up.out.slice(-3000))
    assert.match(up.out, new RegExp(`ready \\(container\\): http://127\\.0\\.0\\.1:${port}/`), up.out.slice(-2000))
    const st = statSync(envFile)
    if (asRoot) {
      // Readable by the container's user through its group; never by others (it holds the push secret).
      assert.match(up.out, new RegExp(`group ${containerGid} .* may read it now`), up.out.slice(-3000))
      assert.equal(st.mode & 0o777, 0o640, `.env mode ${(st.mode & 0o777).toString(8)}`)
      assert.equal(st.gid, containerGid)
    } else {
      assert.equal(st.mode & 0o007, 0, '.env not world-readable')
    }
    id = docker(['ps', '-q', ...projectFilter]).out.trim()
    assert.match(id, /^[0-9a-f]{12}$/, `one running container of project ${project}`)
    t.diagnostic(`make up on a fresh clone (npm ci, build, compose up --build, ready) took ${((Date.now() - started) / 1000).toFixed(1)} s`)
  })

  await step('the container is hardened as docker-compose.yml and the Dockerfile say; the port is published on 127.0.0.1 only', () => {
    type Inspect = [{ Config: { Env: string[]; User: string; StopTimeout?: number; StopSignal?: string; Healthcheck?: { Test: string[] } }; HostConfig: { ReadonlyRootfs: boolean; CapDrop: string[] | null; CapAdd: string[] | null; SecurityOpt: string[] | null; Tmpfs: Record<string, string> | null; RestartPolicy: { Name: string }; PortBindings: Record<string, { HostIp: string; HostPort: string }[]> } }]
    const { Config: c, HostConfig: h } = (JSON.parse(docker(['inspect', id]).out) as Inspect)[0]
    const envKeys = new Set(c.Env.map((e) => e.slice(0, e.indexOf('='))))
    for (const k of containerLayout) assert.ok(envKeys.has(k), `the image sets ${k} (server/stack/docker.ts containerLayout)`)
    assert.ok(c.Env.includes('FORKYARD_READY_CHECKS=workers,push,supervisor'))
    assert.ok(c.Env.includes('NODE_ENV=production'))
    assert.ok(!envKeys.has('FORKYARD_APP'), 'FORKYARD_APP comes from .env, the image does not pin it')
    // Started as root (the entrypoint drops to the stack's user), or as the caller when not root.
    assert.equal(c.User, asRoot ? '0:0' : stackUser)
    assert.ok(c.Env.includes(`FORKYARD_UID=${uid}`) && c.Env.includes(`FORKYARD_GID=${gid}`), c.Env.join(' '))
    assert.equal(c.StopTimeout, 45, 'stop_grace_period 45s')
    assert.equal(c.StopSignal, 'SIGTERM')
    assert.ok(c.Healthcheck?.Test.join(' ').includes('/app/docker/healthcheck.sh'), JSON.stringify(c.Healthcheck))
    assert.equal(h.ReadonlyRootfs, true)
    assert.deepEqual(h.CapDrop, ['ALL'])
    assert.deepEqual((h.CapAdd ?? []).map((cap) => cap.replace(/^CAP_/, '')).sort(), ['CHOWN', 'SETGID', 'SETUID'])
    assert.deepEqual(h.SecurityOpt, ['no-new-privileges:true'])
    assert.ok(h.Tmpfs !== null && '/tmp' in h.Tmpfs, JSON.stringify(h.Tmpfs))
    assert.equal(h.RestartPolicy.Name, 'unless-stopped')
    assert.deepEqual(h.PortBindings['8080/tcp'], [{ HostIp: '127.0.0.1', HostPort: String(port) }])
  })

  await step('the health check turns healthy', async () => {
    await until('container health "healthy"', () => docker(['inspect', '-f', '{{.State.Health.Status}}', id]).out.trim() === 'healthy', 150_000, 1000)
  })

  let reqId = ''
  let pageId = ''
  await step('/healthz, /readyz with every component, the page, a pipeline run to done, a WebSocket message published by a worker', async () => {
    assert.equal((await fetch(url('/healthz'))).status, 200)
    const ready = await readyz(url('/readyz'))
    assert.equal(ready.status, 200, JSON.stringify(ready.body))
    const components = ready.body.components ?? {}
    for (const c of ['workers', 'push', 'bridge', 'supervisor', 'config']) assert.equal(components[c]?.ok, true, `${c} ready: ${JSON.stringify(components)}`)
    // The page (whatever the example app and nginx make of /).
    const page = await fetch(url('/'))
    assert.equal(page.status, 200, await page.text())
    // The example app's own API: the task runs in the jobs process, its queue on the ./data mount.
    const created = await fetch(url('/api/pipelines'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'container', steps: [{ name: 'a', kind: 'sleep', ms: 50 }] }) })
    const body = (await created.json()) as { id?: string; token?: string | null }
    assert.equal(created.status, 202, JSON.stringify(body))
    pageId = created.headers.get('x-request-id') ?? ''
    assert.match(pageId, /^[0-9a-f]{32}$/)
    assert.ok(typeof body.token === 'string' && body.token !== '', 'make up gave .env a push secret: the 202 carries a token')
    await until('pipeline done', async () => ((await (await fetch(url(`/api/pipelines/${body.id}`))).json()) as { state?: string }).state === 'done', 30_000, 250)

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

  const programPid = (name: string): number | null => {
    const m = /RUNNING\s+pid (\d+)/.exec(exec(`supervisorctl -c /app/supervisor/supervisord.conf status ${name}`).out)
    return m === null ? null : Number(m[1])
  }

  await step('kill -9 (the kill binary, through docker exec) of each of nginx, server, push, bridge: readiness red, then green', async () => {
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
      const killed = docker(['exec', '-u', stackUser, id, 'kill', '-9', String(pid)])
      assert.equal(killed.status, 0, `kill -9 ${pid} (${name}): ${killed.out}`)
      await until(`${name}: readiness red`, async () => (await readyz(url('/readyz'))).status !== 200, 15_000, 20)
      await until(`${name}: readiness green again`, async () => (await readyz(url('/readyz'))).status === 200, 90_000, 250)
      const again = pidOf()
      assert.ok(again !== null && again !== pid, `${name} was restarted: ${pid} -> ${again}`)
    }
  })

  await step('the JSON logs on the host: every line parses, one request id in access.log, bridge.log and push.log', async () => {
    assert.ok(reqId !== '')
    const traced = (file: string): boolean => logLines(logDir, file).some((l) => l.reqId === reqId)
    await until('request id in access.log, bridge.log and push.log', () => traced('access') && traced('bridge') && traced('push'), 15_000, 200)
    assert.ok(logLines(logDir, 'access').some((l) => l.reqId === pageId), `POST /api/pipelines (${pageId}) in access.log`)
    const served = logLines(logDir, 'access').find((l) => l.reqId === reqId && l.msg === 'request')
    assert.equal(served?.status, 202, `POST /api/notify (${reqId}) has its access line, written by nginx`)
    assert.equal(served?.svc, 'nginx')
    assert.equal(logLines(logDir, 'server').filter((l) => l.msg === 'request').length, 0, 'the workers do not log each request again')
    for (const svc of ['nginx', 'server', 'push', 'bridge']) {
      const lines = logLines(logDir, svc)
      assert.ok(lines.length > 0, `${svc}.log has lines`)
      for (const l of lines) {
        assert.equal(l.svc, svc, `${svc}.log has one writer`)
        assert.equal(typeof l.time, 'string')
        assert.equal(typeof l.msg, 'string')
      }
    }
    assert.equal(served?.path, '/api/notify')
    for (const l of logLines(logDir, 'access')) assert.equal(l.svc, 'nginx', 'access.log is written by nginx alone')
    for (const f of readdirSync(logDir)) assert.equal(`${statSync(join(logDir, f)).uid}`, uid, `${f} belongs to the stack's user`)
  })

  await step('every process of the stack (PID 1 and its descendants) runs as the non-root user, with no capability', () => {
    // pid, ppid, real/effective/saved/fs uid, permitted/effective/ambient capabilities of each process.
    const r = exec('for d in /proc/[0-9]*; do s=$(cat "$d/status" 2>/dev/null) || continue; printf "%s %s %s %s %s %s\\n" "${d#/proc/}" "$(echo "$s" | sed -n "s/^PPid:\\t//p")" "$(echo "$s" | sed -n "s/^Uid:\\t//p" | tr "\\t" ",")" "$(echo "$s" | sed -n "s/^CapPrm:\\t//p")" "$(echo "$s" | sed -n "s/^CapEff:\\t//p")" "$(echo "$s" | sed -n "s/^CapAmb:\\t//p")"; done')
    assert.equal(r.status, 0, r.out)
    const procs = r.out.trim().split('\n').map((l) => l.split(' ')).map(([pid, ppid, uids, prm, eff, amb]) => ({ pid: Number(pid), ppid: Number(ppid), uids: uids ?? '', caps: [prm, eff, amb] }))
    // The stack: PID 1 and every descendant (docker exec and health-check processes have parent 0).
    const stack = new Set([1])
    for (let grew = true, n = 0; grew && n < 100; n++) {
      grew = false
      for (const p of procs) {
        if (!stack.has(p.pid) && stack.has(p.ppid)) {
          stack.add(p.pid)
          grew = true
        }
      }
    }
    const members = procs.filter((p) => stack.has(p.pid))
    assert.ok(members.length >= 8, `supervisord, 4 programs, nginx master and worker, server workers, jobs: ${r.out}`)
    for (const p of members) {
      assert.equal(p.uids, Array(4).fill(uid).join(','), `pid ${p.pid}: ${r.out}`)
      assert.deepEqual(p.caps, Array(3).fill('0000000000000000'), `pid ${p.pid} has no capability: ${r.out}`)
    }
    assert.match(exec('tr "\\0" " " < /proc/1/cmdline').out, /supervisord -n -c \/app\/supervisor\/supervisord\.conf/, 'supervisord is PID 1')
    assert.match(exec('ps -o user= -p 1').out.trim(), asRoot ? /^forkyard$/ : /^\S+$/, 'ps (procps) is in the image')
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
    setDotenv(envFile, 'FORKYARD_LOG_LEVEL', 'debug')
    assert.match(exec('grep "^FORKYARD_LOG_LEVEL=" /app/.env').out, /=debug/)
    const applied = (svc: string): boolean => logLines(logDir, svc).some((l) => l.msg === 'config applied' && JSON.stringify(l.changed ?? '').includes('FORKYARD_LOG_LEVEL'))
    await until('config applied in server, push and bridge', () => ['server', 'push', 'bridge'].every(applied), 20_000, 200)
  })

  await step('make status and make reload reach the container', () => {
    const ps = make('status')
    assert.equal(ps.status, 0, ps.out)
    for (const name of ['bridge', 'nginx', 'push', 'server']) assert.match(ps.out, new RegExp(`^${name}\\s+\\d+\\s+running`, 'm'), ps.out)
    assert.match(ps.out, /(\d+)\/\1 workers ready/, ps.out)
    // make top runs inside the container too (one frame: COUNT=1).
    const top = sh('make', ['--no-print-directory', 'top', 'COUNT=1'], env, 60_000, kit)
    assert.equal(top.status, 0, top.out)
    assert.match(top.out, /^total: \d+ processes, CPU [\d.]+%, memory [\d.]+M$/m, top.out)
    for (const name of ['supervisord', 'nginx/master', 'server/w1', 'push', 'bridge']) assert.match(top.out, new RegExp(`^${name}\\s+\\d+\\s`, 'm'), top.out)
    // forkyard status from the host asks the arbiter inside the container, with every process.
    const st = sh(process.execPath, ['dist/bin/forkyard.js', 'status', '--json'], env, 60_000, kit)
    assert.equal(st.status, 0, st.out)
    const doc = JSON.parse(st.out.slice(st.out.indexOf('{'))) as { expectedWorkers: number; processes?: { name: string; cpuMs: number | null }[] }
    assert.ok(doc.expectedWorkers > 0, st.out)
    for (const name of ['supervisord', 'nginx/master', 'server/w1', 'push', 'bridge']) assert.ok((doc.processes?.find((p) => p.name === name)?.cpuMs ?? 0) > 0, `${name} in forkyard status --json: ${st.out}`)
    const reload = make('reload', 5 * 60_000)
    assert.equal(reload.status, 0, reload.out)
    assert.match(reload.out, /reload complete/)
  })

  await step('a bad value written into the running stack\'s .env: refused live, and its reason in `docker compose logs` when a program restarts', async () => {
    const good = readFileSync(envFile, 'utf8')
    setDotenv(envFile, 'FORKYARD_WORKERS', 'lots')
    try {
      await until('server.log: config change refused', () => logLines(logDir, 'server').some((l) => typeof l.msg === 'string' && l.msg.includes('refused') && l.msg.includes('"lots"')), 20_000, 200)
      const pid = programPid('server')
      assert.ok(pid !== null)
      assert.equal(docker(['exec', '-u', stackUser, id, 'kill', '-9', String(pid)]).status, 0)
      // The restarted server reads the bad .env and exits 2: supervisord copies its reason out.
      await until('the reason in docker compose logs', () => /forkyard: Expected FORKYARD_WORKERS .*"lots"/.test(composeLogs()), 30_000, 500)
    } finally {
      writeFileSync(envFile, good)
    }
    await until('readiness green again with the good .env', async () => (await readyz(url('/readyz'))).status === 200, 90_000, 250)
  })

  await step('make up on the running container checks .env as the container sees it: a bad FORKYARD_APP fails it (exit 2), the stack keeps serving', async () => {
    const good = readFileSync(envFile, 'utf8')
    setDotenv(envFile, 'FORKYARD_APP', '/srv/myapp/app.mjs')
    let up: Run
    try {
      up = make('up', 5 * 60_000)
    } finally {
      writeFileSync(envFile, good)
    }
    assert.notEqual(up.status, 0, up.out)
    assert.match(up.out, /Error 2/, 'exit code 2: bad settings')
    assert.match(up.out, new RegExp(`forkyard: Expected FORKYARD_APP .*/srv/myapp/app\\.mjs.* in ${envFile.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`), up.out.slice(-3000))
    assert.equal((await readyz(url('/readyz'))).status, 200, 'the running stack is untouched')
  })

  await step('make down stops the container gracefully and leaves nothing', () => {
    const down = make('down', 180_000)
    assert.equal(down.status, 0, down.out)
    assert.equal(docker(['ps', '-a', '-q', ...projectFilter]).out.trim(), '', 'no container left')
    assert.equal(docker(['network', 'ls', '-q', ...projectFilter]).out.trim(), '', 'no network left')
    const stopped = readFileSync(join(logDir, 'supervisord.stdio'), 'utf8')
    for (const name of ['nginx', 'server', 'push', 'bridge']) assert.match(stopped, new RegExp(`stopped: ${name} \\(exit status 0\\)`), `${name} stopped cleanly`)
  })

  const good = readFileSync(envFile, 'utf8')
  await step('a bad value the host sees: make up fails at once with the key and the value, and starts nothing', () => {
    setDotenv(envFile, 'FORKYARD_WORKERS', 'lots')
    const started = Date.now()
    const up = make('up', 120_000)
    writeFileSync(envFile, good)
    assert.notEqual(up.status, 0, up.out)
    assert.match(up.out, /forkyard: .*FORKYARD_WORKERS.*"lots"/, up.out.slice(-3000))
    assert.equal(docker(['ps', '-a', '-q', ...projectFilter]).out.trim(), '', 'no container')
    t.diagnostic(`make up refused FORKYARD_WORKERS=lots in ${((Date.now() - started) / 1000).toFixed(1)} s`)
  })

  await step('a bad value only the container sees (FORKYARD_APP outside the image): make up fails fast, the reason first, and docker compose logs shows it', () => {
    setDotenv(envFile, 'FORKYARD_APP', '/srv/myapp/app.mjs')
    const started = Date.now()
    const up = make('up', 5 * 60_000)
    const took = (Date.now() - started) / 1000
    writeFileSync(envFile, good)
    assert.notEqual(up.status, 0, up.out)
    assert.match(up.out, /Error 2/, 'exit code 2: bad settings')
    assert.ok(took < 90, `failed within 90 s, not after the 180 s readiness wait: ${took.toFixed(1)} s`)
    // The first line of the failure is the reason, naming the key and the value.
    const failure = up.out.slice(up.out.indexOf('forkyard: Expected'))
    assert.match(failure.split('\n')[0] ?? '', /^forkyard: Expected FORKYARD_APP .*\/srv\/myapp\/app\.mjs/, up.out.slice(-4000))
    assert.match(failure, /stopped before it was ready/, up.out.slice(-4000))
    assert.match(composeLogs(), /forkyard: Expected FORKYARD_APP .*\/srv\/myapp\/app\.mjs/)
    assert.equal(docker(['ps', '-q', ...projectFilter]).out.trim(), '', 'the container was stopped, not left restarting')
    t.diagnostic(`make up reported the container's refusal in ${took.toFixed(1)} s`)
    const down = make('down', 180_000)
    assert.equal(down.status, 0, down.out)
    assert.equal(docker(['ps', '-a', '-q', ...projectFilter]).out.trim(), '', 'no container left')
  })
})

test('plain docker compose on a fresh clone: cp .env.example .env, up -d --build, no make; then down', { timeout: 10 * 60_000 }, async (t: TestContext) => {
  const dir = tempDir('fy-compose-')
  const kit = cloneKit(dir)
  const logDir = join(kit, 'logs')
  const port = await freePort()
  const project = `fycompose${process.pid}`
  const env = userEnv({ COMPOSE_PROJECT_NAME: project, FORKYARD_PORT: String(port) })
  const compose = findCompose(env)
  assert.ok(compose !== null, 'a compose command answers')
  const run = (args: string[], timeoutMs = 120_000): Run => sh(compose[0]!, [...compose.slice(1), ...args], env, timeoutMs, kit)
  const { step, docker, projectFilter } = scenario(t, 'compose', project, dir, () => logDir, () => void run(['down'], 180_000))
  const url = (path: string): string => `http://127.0.0.1:${port}${path}`
  let id = ''

  await step(`cp .env.example .env; ${compose.join(' ')} up -d --build`, () => {
    copyFileSync(join(kit, '.env.example'), join(kit, '.env'))
    assert.ok(!existsSync(logDir), 'no ./logs yet: Docker creates it, as root')
    const up = run(['up', '-d', '--build'], 14 * 60_000)
    assert.equal(up.status, 0, up.out.slice(-6000))
    id = docker(['ps', '-q', ...projectFilter]).out.trim()
    assert.match(id, /^[0-9a-f]{12}$/, `one running container of project ${project}`)
  })

  await step('the entrypoint hands the root-owned ./logs and ./data to uid 10001 and drops to it; the container turns healthy', async () => {
    await until('container health "healthy"', () => {
      const state = docker(['inspect', '-f', '{{.State.Health.Status}} {{.RestartCount}}', id]).out.trim()
      assert.match(state, / 0$/, `no restart: ${state}`)
      return state.startsWith('healthy')
    }, 150_000, 1000)
    const logs = run(['logs', '--no-color']).out
    assert.match(logs, /forkyard-entrypoint: \/app\/logs \(owner 0:0\) is not writable by 10001:10001/, logs)
    assert.match(logs, /forkyard: settings in \/app\/\.env and the environment are valid/, logs)
    assert.doesNotMatch(logs, /PermissionError|EACCES/, logs)
    for (const d of ['logs', 'data']) assert.equal(statSync(join(kit, d)).uid, containerUid, `./${d} belongs to uid ${containerUid}`)
    assert.ok(existsSync(join(logDir, 'supervisord.stdio')))
  })

  await step('/healthz, /readyz and the app through the port, published on 127.0.0.1 only', async () => {
    assert.equal((await fetch(url('/healthz'))).status, 200)
    const ready = await readyz(url('/readyz'))
    assert.equal(ready.status, 200, JSON.stringify(ready.body))
    const created = await fetch(url('/api/pipelines'), { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: 'compose', steps: [{ name: 'a', kind: 'sleep', ms: 10 }] }) })
    assert.equal(created.status, 202, await created.text())
    assert.equal(docker(['port', id, '8080/tcp']).out.trim(), `127.0.0.1:${port}`)
  })

  await step(`${compose.join(' ')} down leaves nothing`, () => {
    const down = run(['down'], 180_000)
    assert.equal(down.status, 0, down.out)
    assert.equal(docker(['ps', '-a', '-q', ...projectFilter]).out.trim(), '', 'no container left')
    assert.equal(docker(['network', 'ls', '-q', ...projectFilter]).out.trim(), '', 'no network left')
  })
})

test('docker-compose.redis.yml merges onto docker-compose.yml: a redis service with its AOF under ./data/redis, the app switched to it', (t: TestContext) => {
  // The overlay's image comes from a registry this machine cannot reach, so only compose's own
  // merge and interpolation are checked here; test/integration/multi-host.test.ts runs the engine.
  const kit = cloneKit(tempDir('fy-overlay-'))
  copyFileSync(join(kit, '.env.example'), join(kit, '.env'))
  const env = userEnv({ FORKYARD_REDIS_PASSWORD: 'pw-1', FORKYARD_REDIS_LISTEN: '10.1.2.3' })
  const compose = findCompose(env)
  assert.ok(compose !== null, 'a compose command answers')
  const r = sh(compose[0]!, [...compose.slice(1), '-f', 'docker-compose.yml', '-f', 'docker-compose.redis.yml', 'config'], env, 60_000, kit)
  t.diagnostic(r.out.slice(0, 200))
  assert.equal(r.status, 0, r.out)
  assert.match(r.out, /FORKYARD_ENGINE: redis:\/\/:pw-1@redis:6379\/0/)
  assert.match(r.out, /--appendonly yes --appendfsync always/)
  assert.match(r.out, new RegExp(`${join(kit, 'data', 'redis').replace(/[/.]/g, '\\$&')}:/data`))
  assert.match(r.out, /10\.1\.2\.3/)
})
