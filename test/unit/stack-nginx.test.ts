import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { test, type TestContext } from 'node:test'
import { fileURLToPath } from 'node:url'
import { ForkyardError } from '../../server/errors.js'
import { nginxValues, renderTemplate } from '../../server/stack/nginx.js'

const home = resolve(fileURLToPath(new URL('../..', import.meta.url)))
const templatePath = join(home, 'nginx', 'nginx.conf.template')

function assertConfigError(fn: () => unknown, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(err instanceof ForkyardError, `expected a ForkyardError, got ${String(err)}`)
    assert.equal(err.code, 'FORKYARD_ERR_CONFIG')
    assert.match(err.message, pattern)
    return true
  })
}

/** "75s" -> 75000 */
/** An nginx time value in milliseconds: "5s" or "4500ms". */
function ms(value: string | undefined): number {
  const m = /^(\d+)(ms|s)$/.exec(value ?? '')
  assert.ok(m !== null, `expected an nginx time like "5s" or "4500ms", got ${String(value)}`)
  return Number(m[1]) * (m[2] === 's' ? 1000 : 1)
}

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'fy-nginx-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

test('renderTemplate replaces every ${NAME}, however often it appears', () => {
  const out = renderTemplate('a ${ONE} b ${TWO_WORDS} c ${ONE}\n${ONE}${ONE}', { ONE: '1', TWO_WORDS: 'x y', UNUSED: 'z' })
  assert.equal(out, 'a 1 b x y c 1\n11')
})

test('renderTemplate leaves nginx variables alone', () => {
  const template = 'log_format f \'{"time":"${fy_time}.${fy_millis}Z","id":"$request_id"}\'; pid ${RUN_DIR}/nginx.pid; $host ${Mixed}'
  assert.equal(renderTemplate(template, { RUN_DIR: '/run/x' }), 'log_format f \'{"time":"${fy_time}.${fy_millis}Z","id":"$request_id"}\'; pid /run/x/nginx.pid; $host ${Mixed}')
})

test('renderTemplate: a placeholder without a value is an error naming it', () => {
  assertConfigError(() => renderTemplate('listen ${LISTEN};\nroot ${STATIC_DIR};', { LISTEN: '1.2.3.4:80' }), /\$\{STATIC_DIR\}/)
  // A value may be empty.
  assert.equal(renderTemplate('a${USER_DIRECTIVE}b', { USER_DIRECTIVE: '' }), 'ab')
})

const env = { FORKYARD_BIND: 'unix:/tmp/x.sock', FORKYARD_RUN_DIR: '/tmp/fy-run-test' }

test('nginxValues: the upstream socket from FORKYARD_BIND, the run directory, paths under home', () => {
  const v = nginxValues(env, home)
  assert.equal(v.SERVER_SOCKET, '/tmp/x.sock')
  assert.equal(v.RUN_DIR, '/tmp/fy-run-test')
  assert.equal(v.ACCESS_LOG, '/tmp/fy-run-test/nginx-access.fifo')
  assert.equal(v.CLIENT_DIR, join(home, 'client'))
  assert.equal(v.STATIC_DIR, join(home, 'example/public'))
  assert.equal(v.PUSH_BIND, '127.0.0.1:8001')
  assert.equal(v.NGINX_WORKERS, '1')
  // A TCP bind next to the socket is fine: the socket is used.
  assert.equal(nginxValues({ ...env, FORKYARD_BIND: '127.0.0.1:9000,unix:/tmp/y.sock' }, home).SERVER_SOCKET, '/tmp/y.sock')
})

test('nginxValues: nginx closes idle upstream connections before the server does', () => {
  for (const keepalive of ['75s', '10s', '6s', '5s', '2s', '30m']) {
    const v = nginxValues({ ...env, FORKYARD_KEEPALIVE_TIMEOUT: keepalive }, home)
    assert.ok(ms(v.UPSTREAM_KEEPALIVE) < ms(v.SERVER_KEEPALIVE), `${keepalive}: upstream ${String(v.UPSTREAM_KEEPALIVE)}, server ${String(v.SERVER_KEEPALIVE)}`)
  }
  assert.equal(nginxValues(env, home).SERVER_KEEPALIVE, '75s')
})

test('nginxValues: upstream keepalive below a 1s server keepalive', () => {
  for (const [keepalive, serverMs] of [['1s', 1000], ['800ms', 800]] as const) {
    const v = nginxValues({ ...env, FORKYARD_KEEPALIVE_TIMEOUT: keepalive }, home)
    assert.ok(ms(v.UPSTREAM_KEEPALIVE) < serverMs, `${keepalive}: upstream ${String(v.UPSTREAM_KEEPALIVE)}`)
  }
})

test('nginxValues: LISTEN from FORKYARD_LISTEN_HOST and FORKYARD_PORT, BODY_LIMIT in bytes', () => {
  const v = nginxValues({ ...env, FORKYARD_LISTEN_HOST: '0.0.0.0', FORKYARD_PORT: '8443', FORKYARD_BODY_LIMIT: '10MiB' }, home)
  assert.equal(v.LISTEN, '0.0.0.0:8443')
  assert.equal(v.BODY_LIMIT, String(10 * 1024 * 1024))
  const d = nginxValues(env, home)
  assert.equal(d.LISTEN, '127.0.0.1:8080')
  assert.equal(d.BODY_LIMIT, '1048576')
})

test('nginxValues: an IPv6 listen host is bracketed', () => {
  assert.equal(nginxValues({ ...env, FORKYARD_LISTEN_HOST: '::' }, home).LISTEN, '[::]:8080')
})

test('nginxValues: nginx waits longer than the server for a response', () => {
  const cases: [Record<string, string>, number][] = [
    [{}, 30_000],
    [{ FORKYARD_TIMEOUT: '2m' }, 120_000],
    [{ FORKYARD_TIMEOUT: '10s', FORKYARD_REQUEST_TIMEOUT: '45s' }, 45_000],
    [{ FORKYARD_TIMEOUT: '1500ms' }, 1500],
  ]
  for (const [extra, worst] of cases) {
    const v = nginxValues({ ...env, ...extra }, home)
    assert.ok(ms(v.PROXY_READ_TIMEOUT) > worst, `${JSON.stringify(extra)}: proxy_read_timeout ${String(v.PROXY_READ_TIMEOUT)}`)
  }
})

test('nginxValues: without a unix: bind it throws, naming FORKYARD_BIND', () => {
  assertConfigError(() => nginxValues({ FORKYARD_BIND: '127.0.0.1:8000' }, home), /FORKYARD_BIND/)
  assertConfigError(() => nginxValues({}, home), /FORKYARD_BIND.*unix:/)
})

test('nginxValues validates the other settings it reads', () => {
  assertConfigError(() => nginxValues({ ...env, FORKYARD_PORT: 'http' }, home), /FORKYARD_PORT/)
  assertConfigError(() => nginxValues({ ...env, FORKYARD_PUSH_BIND: 'nowhere' }, home), /FORKYARD_PUSH_BIND/)
})

test('the real template renders with nginxValues, with no placeholder left', () => {
  const rendered = renderTemplate(readFileSync(templatePath, 'utf8'), nginxValues(env, home))
  assert.doesNotMatch(rendered, /\$\{[A-Z_]+\}/)
  assert.match(rendered, /server unix:\/tmp\/x\.sock max_fails=0;/)
  assert.match(rendered, /listen 127\.0\.0\.1:8080;/)
  assert.match(rendered, /pid \/tmp\/fy-run-test\/nginx\.pid;/)
  // nginx's own variables are still there.
  assert.ok(rendered.includes('${fy_time}.${fy_millis}Z'))
  assert.ok(rendered.includes('$request_id'))
})

test('nginx -t accepts the rendered configuration', (t) => {
  const version = spawnSync('nginx', ['-v'], { encoding: 'utf8' })
  if (version.error !== undefined) assert.fail(`nginx is not installed or not on PATH (${version.error.message}): install it (apt-get install nginx) to check the rendered configuration; CI installs it`)
  const run = tempDir(t)
  const values = nginxValues({ ...env, FORKYARD_RUN_DIR: run, FORKYARD_BIND: `unix:${join(run, 'server.sock')}` }, home)
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(run, 'nginx-temp', d), { recursive: true })
  const conf = join(run, 'nginx.conf')
  writeFileSync(conf, renderTemplate(readFileSync(templatePath, 'utf8'), values))
  const check = spawnSync('nginx', ['-t', '-q', '-e', 'stderr', '-c', conf], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' }, timeout: 30_000 })
  assert.equal(check.status, 0, `nginx -t failed (${String(check.status)} ${String(check.signal)}): ${check.stderr}${check.stdout}`)
})
