/**
 * `forkyard up | down | ps`: the whole stack under supervisord, natively (the same supervisor/ and
 * nginx/ files the container uses). `up` creates .env from .env.example on first run, installs
 * nginx and supervisor with apt-get when they are missing and it may, starts supervisord, and
 * returns once /readyz through nginx answers 200, printing the URL.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { loadConfig } from '../config/load.js'
import { loadLogConfig } from '../config/logging.js'
import { loadStackConfig } from '../config/stack.js'
import { ForkyardError, codes } from '../errors.js'
import { isAlive, readPid } from '../arbiter/pidfile.js'

export interface StackEnv {
  env: NodeJS.ProcessEnv
  runDir: string
  logDir: string
  port: number
  url: string
}

/** The environment supervisord and its programs run with: .env plus the stack's own paths. */
export function stackEnv(home: string, base: NodeJS.ProcessEnv): StackEnv {
  const runDir = resolve(home, base.FORKYARD_RUN_DIR?.trim() || 'run')
  const logDir = resolve(home, base.FORKYARD_LOG_DIR?.trim() || 'logs')
  const env: NodeJS.ProcessEnv = {
    ...base,
    FORKYARD_HOME: home,
    FORKYARD_NODE: process.execPath,
    FORKYARD_RUN_DIR: runDir,
    FORKYARD_LOG_DIR: logDir,
    // The whole stack is ready only when every component is.
    FORKYARD_READY_CHECKS: 'workers,push,supervisor',
  }
  // nginx reaches the server on a Unix socket in the run directory unless .env says otherwise.
  if (!(base.FORKYARD_BIND ?? '').includes('unix:')) env.FORKYARD_BIND = `unix:${join(runDir, 'server.sock')}`
  const stack = loadStackConfig(env, home)
  env.FORKYARD_APP = stack.app
  // Validate everything now: a bad value stops `up` with a clear message, before anything starts.
  loadConfig(env)
  loadLogConfig(env)
  const host = stack.listenHost === '0.0.0.0' ? '127.0.0.1' : stack.listenHost
  return { env, runDir, logDir, port: stack.port, url: `http://${host}:${stack.port}/` }
}

/**
 * Creates .env from .env.example the first time, with a fresh random FORKYARD_PUSH_SECRET (so that
 * private channels work out of the box and no two installations share a secret); true when it did.
 */
export function ensureDotenv(home: string): boolean {
  const target = join(home, '.env')
  if (existsSync(target)) return false
  const example = readFileSync(join(home, '.env.example'), 'utf8')
  writeFileSync(target, example.replace(/^FORKYARD_PUSH_SECRET=$/m, `FORKYARD_PUSH_SECRET=${randomBytes(32).toString('hex')}`), { mode: 0o600 })
  return true
}

function which(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0
}

/** nginx and supervisord present, or installed with apt-get when root; else a clear error. */
export function ensurePackages(say: (s: string) => void): void {
  const missing = [['nginx', 'nginx'], ['supervisord', 'supervisor']].filter(([cmd]) => !which(cmd!)).map(([, pkg]) => pkg!)
  if (missing.length === 0) return
  const canInstall = process.getuid?.() === 0 && which('apt-get')
  if (!canInstall) {
    throw new ForkyardError(codes.CONFIG, `Expected nginx and supervisord on PATH, missing: ${missing.join(', ')}. Install them (Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')}), or start Docker so that make up uses the container.`)
  }
  say(`installing ${missing.join(' ')} with apt-get`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env })
    if (r.status !== 0) throw new ForkyardError(codes.CONFIG, `apt-get ${args.join(' ')} failed with exit code ${r.status}`)
  }
}

export function supervisordPid(runDir: string): number | null {
  const pid = readPid(join(runDir, 'supervisord.pid'))
  return pid !== null && isAlive(pid) ? pid : null
}

export function supervisorctl(home: string, s: StackEnv, args: string[], inherit = false): { status: number | null; out: string } {
  const r = spawnSync('supervisorctl', ['-c', join(home, 'supervisor/supervisord.conf'), ...args], { env: s.env, encoding: 'utf8', stdio: inherit ? 'inherit' : 'pipe' })
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') }
}

async function waitReady(url: string, timeoutMs: number): Promise<{ ok: boolean; last: string }> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    try {
      const res = await fetch(new URL('readyz', url), { signal: AbortSignal.timeout(2000) })
      last = `${res.status} ${await res.text()}`
      if (res.status === 200) return { ok: true, last }
    } catch (err) {
      last = (err as Error).message
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  return { ok: false, last }
}

export async function upNative(home: string, base: NodeJS.ProcessEnv, say: (s: string) => void, timeoutMs = 90_000): Promise<StackEnv> {
  const s = stackEnv(home, base)
  ensurePackages(say)
  mkdirSync(s.runDir, { recursive: true, mode: 0o700 })
  mkdirSync(s.logDir, { recursive: true })
  if (supervisordPid(s.runDir) === null) {
    say(`starting supervisord (nginx, server, push, bridge); logs in ${s.logDir}`)
    const r = spawnSync('supervisord', ['-c', join(home, 'supervisor/supervisord.conf')], { env: s.env, encoding: 'utf8', cwd: home })
    if (r.status !== 0) throw new ForkyardError(codes.CONFIG, `supervisord failed to start (exit ${r.status}): ${r.stderr ?? ''}${r.stdout ?? ''}`)
  } else {
    say('supervisord already running: making sure every program is started')
    supervisorctl(home, s, ['start', 'all'])
  }
  const ready = await waitReady(s.url, timeoutMs)
  if (!ready.ok) {
    const st = supervisorctl(home, s, ['status'])
    throw new ForkyardError(codes.BOOT_FAILED, `The stack did not become ready within ${timeoutMs / 1000} s. Last /readyz: ${ready.last.slice(0, 2000)}\n${st.out}\nSee the logs: make logs`)
  }
  return s
}

export async function downNative(home: string, base: NodeJS.ProcessEnv, say: (s: string) => void, timeoutMs = 60_000): Promise<void> {
  const s = stackEnv(home, base)
  const pid = supervisordPid(s.runDir)
  if (pid === null) {
    say('not running')
    return
  }
  say(`stopping supervisord (pid ${pid}) and every program, gracefully`)
  process.kill(pid, 'SIGTERM')
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  if (isAlive(pid)) throw new ForkyardError(codes.CONTROL, `supervisord (pid ${pid}) still running after ${timeoutMs / 1000} s`)
  say('stopped')
}
