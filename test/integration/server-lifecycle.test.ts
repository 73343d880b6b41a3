/**
 * Boot, health, request ids, access lines, bad settings and graceful stop of the real
 * `forkyard serve` process.
 */
import assert from 'node:assert/strict'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { request } from 'node:http'
import { join } from 'node:path'
import { test } from 'node:test'
import { get } from '../helpers/load.js'
import { bin, root, sleep, startServer, tempDir } from '../helpers/server.js'

const app = join(root, 'test/fixtures/app.mjs')

test('serves the app from N workers, answers /healthz itself, logs one access line per request with the request id', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '2' } })
  const status = await s.status()
  assert.equal(status.workers.length, 2)
  assert.equal(status.readyWorkers, 2)
  assert.equal(s.logs.find((l) => l.msg === 'starting 2 workers')?.workers, 2)

  const hello = await get(s.port, '/', { 'X-Request-ID': 'req-abc-123' })
  assert.equal(hello.status, 200)
  assert.match(hello.text, /^hello v1 \d+\n$/)
  assert.equal(hello.headers['x-request-id'], 'req-abc-123')

  const health = await get(s.port, '/healthz')
  assert.equal(health.status, 200)
  assert.equal((JSON.parse(health.text) as { status: string }).status, 'ok')

  const generated = await get(s.port, '/?x=1')
  const genId = generated.headers['x-request-id']
  assert.equal(typeof genId, 'string')
  assert.match(String(genId), /^[0-9a-f-]{36}$/)

  const access = await s.waitLog((l) => l.msg === 'request' && l.reqId === 'req-abc-123', 'access line')
  assert.equal(access.method, 'GET')
  assert.equal(access.path, '/')
  assert.equal(access.status, 200)
  assert.equal(typeof access.ms, 'number')
  assert.equal(access.svc, 'server')
  assert.equal(typeof access.worker, 'number')
  assert.equal(typeof access.time, 'string')
  await s.waitLog((l) => l.msg === 'request' && l.reqId === genId && l.path === '/', 'generated id in access line (query string not logged)')
  // /healthz never reaches the app and is not an access line of the app.
  assert.equal(s.logs.filter((l) => l.msg === 'request' && l.path === '/healthz').length, 0)
  // Every line carries the shared schema.
  for (const l of s.logs) {
    assert.equal(typeof l.time, 'string', JSON.stringify(l))
    assert.equal(typeof l.level, 'string', JSON.stringify(l))
    assert.equal(l.svc, 'server', JSON.stringify(l))
    assert.equal(typeof l.pid, 'number', JSON.stringify(l))
    assert.equal(typeof l.msg, 'string', JSON.stringify(l))
  }
})

test('answers 431 to oversized headers and keeps serving', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '1', FORKYARD_MAX_HEADER_SIZE: '4KiB' } })
  const big = await get(s.port, '/', { 'X-Big': 'x'.repeat(8 * 1024) })
  assert.equal(big.status, 431)
  assert.equal((await get(s.port, '/')).status, 200)
})

test('bad settings exit with code 2 and name the variable, the value and what was expected', () => {
  const r = spawnSync(process.execPath, [bin, 'serve', app], { cwd: tempDir(), env: { PATH: process.env.PATH ?? '', FORKYARD_WORKERS: 'two' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r.status, 2, r.stderr)
  assert.match(r.stderr, /Expected FORKYARD_WORKERS to be a whole number >= 0, got "two"/)
  const r2 = spawnSync(process.execPath, [bin, 'serve', app], { cwd: tempDir(), env: { PATH: process.env.PATH ?? '', FORKYARD_BIND: 'localhost' }, encoding: 'utf8', timeout: 20_000 })
  assert.equal(r2.status, 2, r2.stderr)
  assert.match(r2.stderr, /FORKYARD_BIND/)
  assert.match(r2.stderr, /"localhost"/)
})

test('an app that throws on import makes the server exit 3 with the import error, without looping', async () => {
  const started = Date.now()
  const r = spawnSync(process.execPath, [bin, 'serve', join(root, 'test/fixtures/throws-on-import.mjs')], {
    cwd: tempDir(),
    env: { PATH: process.env.PATH ?? '', FORKYARD_WORKERS: '2', FORKYARD_BIND: '127.0.0.1:0' },
    encoding: 'utf8',
    timeout: 30_000,
  })
  assert.equal(r.status, 3, r.stdout + r.stderr)
  assert.match(r.stderr, /boom: app failed at import time/)
  const lines = r.stdout.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>)
  assert.ok(lines.some((l) => l.level === 'fatal' && JSON.stringify(l.err).includes('boom')), r.stdout)
  assert.equal(lines.filter((l) => l.msg === 'worker spawned').length, 2, 'no respawn loop')
  assert.ok(Date.now() - started < 25_000)

  const r2 = spawnSync(process.execPath, [bin, 'serve', join(root, 'test/fixtures/not-a-listener.mjs')], {
    cwd: tempDir(),
    env: { PATH: process.env.PATH ?? '', FORKYARD_WORKERS: '1', FORKYARD_BIND: '127.0.0.1:0' },
    encoding: 'utf8',
    timeout: 30_000,
  })
  assert.equal(r2.status, 3)
  assert.match(r2.stderr, /default export that is a request listener/)
})

test('SIGTERM during a slow request: it completes, new connections are refused, exit 0', async (t) => {
  const s = await startServer(t, { app, env: { FORKYARD_WORKERS: '2' } })
  const slow = get(s.port, '/slow?ms=1500')
  await sleep(300)
  s.child.kill('SIGTERM')
  const res = await slow
  assert.equal(res.status, 200)
  assert.match(res.text, /^slow done \d+\n$/)
  assert.equal(res.headers.connection, 'close')
  const { code, signal } = await s.exited
  assert.equal(signal, null)
  assert.equal(code, 0, s.raw())
  await assert.rejects(get(s.port, '/'), /ECONNREFUSED/)
  assert.ok(s.logs.some((l) => l.msg === 'stopped' && l.code === 0))
  assert.equal(s.logs.filter((l) => l.msg === 'drained').length, 2)
})

test('binds a Unix socket, replacing a stale socket file left by a killed process', async (t) => {
  const dir = tempDir()
  const sock = join(dir, 'app.sock')
  // A process that listens on the socket and is killed -9 leaves the file behind.
  const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(sock)}, () => console.log('up'))`], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise((res) => holder.stdout!.once('data', res))
  holder.kill('SIGKILL')
  await new Promise((res) => holder.once('exit', res))
  assert.ok(existsSync(sock), 'stale socket file present')
  const s = await startServer(t, { app, cwd: dir, env: { FORKYARD_WORKERS: '2', FORKYARD_BIND: `unix:${sock}` } })
  const text = await new Promise<string>((resolve, reject) => {
    request({ socketPath: sock, path: '/' }, (res) => {
      let b = ''
      res.on('data', (c: Buffer) => (b += c.toString()))
      res.on('end', () => resolve(b))
    }).on('error', reject).end()
  })
  assert.match(text, /^hello v1 \d+\n$/)
  assert.equal((await s.status()).bind[0], `unix:${sock}`)
})
