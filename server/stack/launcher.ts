/**
 * `forkyard up | down | ps | logs | check`: the whole stack under supervisord, natively (the same
 * supervisor/ and nginx/ files the container uses).
 *
 * Two directories: the kit's own (`home`: dist/, nginx/, supervisor/, client/; the checkout, or
 * node_modules/forkyard in an app) and the project's (`dir`: where `forkyard up` runs, holding
 * .env, run/, logs/ and data/; the same as `home` in a checkout). Every program runs in the
 * project directory and reads its .env itself: supervisord's environment carries only the
 * operator's own variables and the stack's paths, never the file's values, so that an edit of
 * .env reaches the running processes instead of being pinned by an environment variable.
 *
 * `up` creates .env from .env.example on first run, installs nginx and supervisor with apt-get
 * when they are missing and it may, validates every settings schema, starts supervisord, and
 * returns once /readyz through nginx answers 200, printing the URL. `down`, `ps` and `logs` need
 * only the paths, so they work whatever else .env holds.
 */
import { spawnSync } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parse } from 'dotenv'
import { definedEnv, snapshot } from '../config/env-file.js'
import { loadStackConfig } from '../config/stack.js'
import { ForkyardError, codes } from '../errors.js'
import { isAlive, readPid } from '../process/pidfile.js'
import { duration } from '../config/parse.js'
import { describe, stackProcesses, stopProcesses } from '../process/leftovers.js'

export interface StackPaths {
  /** The kit's directory (dist/, nginx/, supervisor/, client/). */
  home: string
  /** The project directory: .env, run/, logs/, data/; every program's working directory. */
  dir: string
  /** supervisord's environment: the operator's variables plus the stack's paths, nothing from .env. */
  env: NodeJS.ProcessEnv
  runDir: string
  logDir: string
  /** How long programs may take to stop: FORKYARD_GRACEFUL_TIMEOUT plus 10 s (30 s + 10 s if unreadable). */
  graceMs: number
}

export interface StackEnv extends StackPaths {
  port: number
  url: string
}

/** The project's .env as key/value pairs ({} when there is none); `path` overrides <dir>/.env. */
export function readProjectEnv(dir: string, path?: string): Record<string, string> {
  const file = resolve(dir, path ?? '.env')
  return existsSync(file) ? parse(readFileSync(file, 'utf8')) : {}
}

/** What each program will see: the file's values, overridden by the operator's environment. */
function effective(base: NodeJS.ProcessEnv, file: Record<string, string>): Record<string, string> {
  return { ...file, ...definedEnv(base) }
}

/** Paths only, no validation: enough for down, ps and logs whatever else .env holds. */
export function stackPaths(home: string, dir: string, base: NodeJS.ProcessEnv, file: Record<string, string>): StackPaths {
  const eff = effective(base, file)
  const runDir = resolve(dir, eff.FORKYARD_RUN_DIR?.trim() || 'run')
  const logDir = resolve(dir, eff.FORKYARD_LOG_DIR?.trim() || 'logs')
  const env: NodeJS.ProcessEnv = {
    ...base,
    FORKYARD_HOME: home,
    FORKYARD_PROJECT_DIR: dir,
    FORKYARD_NODE: process.execPath,
    FORKYARD_RUN_DIR: runDir,
    FORKYARD_LOG_DIR: logDir,
    // The whole stack is ready only when every component is.
    FORKYARD_READY_CHECKS: 'workers,push,supervisor',
  }
  // nginx reaches the server on a Unix socket in the run directory unless .env says otherwise.
  if (!(eff.FORKYARD_BIND ?? '').includes('unix:')) env.FORKYARD_BIND = `unix:${join(runDir, 'server.sock')}`
  let graceMs = 40_000
  try {
    graceMs = duration('FORKYARD_GRACEFUL_TIMEOUT', eff.FORKYARD_GRACEFUL_TIMEOUT?.trim() || '30s') + 10_000
  } catch {
    // a bad value: down must work whatever .env holds
  }
  return { home, dir, env, runDir, logDir, graceMs }
}

/**
 * The paths, after validating every schema (server, push, bridge, publisher, logs, stack, the
 * app's) against what the programs will see: a bad value stops `up` with a clear message before
 * anything starts, and the app module must exist.
 */
export function stackEnv(home: string, dir: string, base: NodeJS.ProcessEnv, file: Record<string, string>, options: { checkApp?: boolean } = {}): StackEnv {
  const paths = stackPaths(home, dir, base, file)
  // What each program will see: the file, under the operator's environment and the stack's paths.
  const seen = effective(paths.env, file)
  const cwd = process.cwd()
  // Relative paths in .env are relative to the project directory, where the programs run.
  process.chdir(dir)
  try {
    snapshot(seen, Object.keys(file))
  } finally {
    process.chdir(cwd)
  }
  const stack = loadStackConfig(seen, dir)
  if (options.checkApp !== false && !existsSync(stack.app)) {
    throw new ForkyardError(codes.CONFIG, `Expected FORKYARD_APP to name the app module (default export: a node:http request listener), got ${JSON.stringify(seen.FORKYARD_APP ?? 'example/app.mjs')}: no file ${stack.app}. Set FORKYARD_APP in ${join(dir, '.env')}`)
  }
  const host = stack.listenHost === '0.0.0.0' ? '127.0.0.1' : stack.listenHost
  return { ...paths, port: stack.port, url: `http://${host.includes(':') ? `[${host}]` : host}:${stack.port}/` }
}

/** The app's module in an app directory: package.json's "main", else the first usual name found. */
function appModule(dir: string): string {
  try {
    const main = (JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { main?: unknown }).main
    if (typeof main === 'string' && existsSync(join(dir, main))) return main
  } catch {
    // no package.json, or not JSON
  }
  return ['app.mjs', 'app.js', 'server.mjs', 'server.js', 'index.mjs', 'index.js'].find((f) => existsSync(join(dir, f))) ?? 'app.mjs'
}

function newSecret(): string {
  return randomBytes(32).toString('hex')
}

/**
 * Creates <dir>/.env from the kit's .env.example the first time, and gives FORKYARD_PUSH_SECRET a
 * fresh random value when it is empty (a copied .env.example): private channels work out of the
 * box and no two installations share a secret. Returns what it did, for the user.
 */
export function ensureDotenv(home: string, dir: string, base: NodeJS.ProcessEnv): string[] {
  const target = join(dir, '.env')
  if (!existsSync(target)) {
    let text = readFileSync(join(home, '.env.example'), 'utf8').replace(/^FORKYARD_PUSH_SECRET=$/m, `FORKYARD_PUSH_SECRET=${newSecret()}`)
    const said = [`created ${target} from .env.example, with a random FORKYARD_PUSH_SECRET`]
    if (resolve(dir) !== resolve(home)) {
      // An app that installed the kit: its own module and static files, not the kit's example.
      const app = appModule(dir)
      text = text.replace(/^FORKYARD_APP=.*$/m, `FORKYARD_APP=${app}`).replace(/^FORKYARD_STATIC_DIR=.*$/m, 'FORKYARD_STATIC_DIR=public')
      said.push(`FORKYARD_APP=${app}${existsSync(join(dir, app)) ? '' : ' (no such file yet: write it, or edit FORKYARD_APP)'}, FORKYARD_STATIC_DIR=public`)
    }
    // 0600: it holds the push secret (with Docker, forkyard up shares it with the container user's group: 0640).
    writeFileSync(target, text, { mode: 0o600 })
    return said
  }
  if ((base.FORKYARD_PUSH_SECRET ?? '').trim() !== '') return []
  const text = readFileSync(target, 'utf8')
  const current = parse(text).FORKYARD_PUSH_SECRET
  if (current !== undefined && current.trim() !== '') return []
  const line = `FORKYARD_PUSH_SECRET=${newSecret()}`
  const next = /^[ \t]*FORKYARD_PUSH_SECRET[ \t]*=.*$/m.test(text) ? text.replace(/^[ \t]*FORKYARD_PUSH_SECRET[ \t]*=.*$/m, line) : `${text}${text.endsWith('\n') || text === '' ? '' : '\n'}${line}\n`
  writeFileSync(target, next, { mode: statSync(target).mode & 0o777 })
  return [`FORKYARD_PUSH_SECRET was empty in ${target}: wrote a random one (tokens for private channels need it)`]
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
    throw new ForkyardError(codes.LAUNCH, `Expected nginx and supervisord on PATH, missing: ${missing.join(', ')}. Install them (Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')}), or start Docker so that make up uses the container.`)
  }
  say(`installing ${missing.join(' ')} with apt-get`)
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', '--no-install-recommends', ...missing]]) {
    const r = spawnSync('apt-get', args, { stdio: 'inherit', env })
    if (r.status !== 0) throw new ForkyardError(codes.LAUNCH, `apt-get ${args.join(' ')} failed with exit code ${r.status}`)
  }
}

export function supervisordPid(runDir: string): number | null {
  const pid = readPid(join(runDir, 'supervisord.pid'))
  return pid !== null && isAlive(pid) ? pid : null
}

/** The programs supervisord runs (supervisor/supervisord.conf). */
export const PROGRAMS = ['bridge', 'push', 'server', 'nginx'] as const

/** `forkyard restart` arguments, checked: program names, or all. */
export function restartTargets(args: string[]): string[] {
  if (args.length === 0) throw new ForkyardError(codes.CONFIG, `Expected forkyard restart PROGRAM... with programs among ${PROGRAMS.join(', ')} or all, got none`)
  for (const a of args) {
    if (a !== 'all' && !(PROGRAMS as readonly string[]).includes(a)) throw new ForkyardError(codes.CONFIG, `Expected forkyard restart PROGRAM... with programs among ${PROGRAMS.join(', ')} or all, got ${JSON.stringify(a)}`)
  }
  return args
}

/**
 * <run dir>/supervisorctl.conf: supervisor/supervisord.conf names its socket by
 * %(ENV_FORKYARD_RUN_DIR)s, which a plain shell has not set; this file names it by its path, so
 * `supervisorctl -c run/supervisorctl.conf status` works from any shell.
 */
export function writeSupervisorctlConf(s: StackPaths): string {
  const path = join(s.runDir, 'supervisorctl.conf')
  writeFileSync(path, `; written by forkyard up: supervisorctl -c ${path} status|restart <program>|tail <program>\n[supervisorctl]\nserverurl=unix://${join(s.runDir, 'supervisor.sock')}\n`, { mode: 0o600 })
  return path
}

export function supervisorctl(s: StackPaths, args: string[], inherit = false): { status: number | null; out: string } {
  const r = spawnSync('supervisorctl', ['-c', join(s.home, 'supervisor/supervisord.conf'), ...args], { env: s.env, encoding: 'utf8', stdio: inherit ? 'inherit' : 'pipe' })
  return { status: r.status, out: (r.stdout ?? '') + (r.stderr ?? '') }
}
/** The last lines that say why a program failed: its JSON log's errors, then its own stdout/stderr. */
export function failureReasons(logDir: string, programs: string[], max = 6): string {
  const out: string[] = []
  for (const p of programs) {
    const lines: string[] = []
    const log = join(logDir, `${p}.log`)
    if (existsSync(log)) {
      for (const text of readFileSync(log, 'utf8').split('\n').slice(-400)) {
        try {
          const line = JSON.parse(text) as { level?: unknown; msg?: unknown; err?: { message?: unknown }; error?: unknown }
          if (line.level === 'error' || line.level === 'fatal') lines.push(`${String(line.msg)}${line.err?.message !== undefined ? `: ${String(line.err.message)}` : ''}${typeof line.error === 'string' ? `: ${line.error}` : ''}`)
        } catch {
          // not a JSON line
        }
      }
    }
    const stdio = join(logDir, `${p}.stdio`)
    if (existsSync(stdio)) lines.push(...readFileSync(stdio, 'utf8').split('\n').filter((l) => l.trim() !== '').slice(-max))
    if (lines.length > 0) out.push(`${p}:\n  ${lines.slice(-max).join('\n  ')}`)
  }
  return out.join('\n')
}

/** Polls /readyz until 200; gives up early when supervisord reports a program FATAL. */
async function waitReady(s: StackEnv, timeoutMs: number): Promise<{ ok: boolean; last: string; fatal: string[] }> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    try {
      const res = await fetch(new URL('readyz', s.url), { signal: AbortSignal.timeout(2000) })
      last = `${res.status} ${await res.text()}`
      if (res.status === 200) return { ok: true, last, fatal: [] }
    } catch (err) {
      last = (err as Error).message
    }
    if (i % 8 === 7) {
      const fatal = [...supervisorctl(s, ['status']).out.matchAll(/^(\S+)\s+FATAL/gm)].map((m) => m[1]!)
      if (fatal.length > 0) return { ok: false, last, fatal }
    }
    await new Promise((r) => setTimeout(r, 250))
  }
  return { ok: false, last, fatal: [] }
}

export async function upNative(s: StackEnv, say: (s: string) => void, timeoutMs = 90_000): Promise<void> {
  ensurePackages(say)
  mkdirSync(s.runDir, { recursive: true, mode: 0o700 })
  mkdirSync(s.logDir, { recursive: true })
  writeSupervisorctlConf(s)
  if (supervisordPid(s.runDir) === null) {
    await cleanLeftovers(s, say)
    say(`starting supervisord (nginx, server, push, bridge); logs in ${s.logDir}`)
    const r = spawnSync('supervisord', ['-c', join(s.home, 'supervisor/supervisord.conf')], { env: s.env, encoding: 'utf8', cwd: s.dir })
    if (r.status !== 0) throw new ForkyardError(codes.LAUNCH, `supervisord failed to start (exit ${r.status}): ${r.stderr ?? ''}${r.stdout ?? ''}`)
  } else {
    say('supervisord already running: making sure every program is started')
    supervisorctl(s, ['start', 'all'])
  }
  const ready = await waitReady(s, timeoutMs)
  if (!ready.ok) {
    const st = supervisorctl(s, ['status'])
    const why = failureReasons(s.logDir, ready.fatal.length > 0 ? ready.fatal : ['server', 'push', 'bridge', 'nginx'])
    const head = ready.fatal.length > 0 ? `${ready.fatal.join(', ')} failed to start (supervisord gave up: FATAL)` : `The stack did not become ready within ${timeoutMs / 1000} s`
    throw new ForkyardError(codes.BOOT_FAILED, `${head}.\n${why !== '' ? `${why}\n` : ''}Last /readyz: ${ready.last.slice(0, 1000)}\n${st.out}See every log: make logs (the stack keeps running: make down stops it)`)
  }
}

/** Processes a killed stack left behind (they stop by themselves when supervisord dies; this waits, then kills). */
async function cleanLeftovers(s: StackPaths, say: (s: string) => void): Promise<void> {
  const left = stackProcesses(s.runDir)
  if (left.length === 0) return
  say(`stopping ${left.length} process${left.length === 1 ? '' : 'es'} left by an earlier run of this stack: ${describe(left)}`)
  const alive = await stopProcesses(left, s.graceMs)
  if (alive.length > 0) throw new ForkyardError(codes.LAUNCH, `Cannot stop processes of an earlier run of this stack: ${describe(alive)}`)
}

/** Stops supervisord and every program; never reports success while a process of the stack lives. */
export async function downNative(s: StackPaths, say: (s: string) => void, timeoutMs = 60_000): Promise<void> {
  const pid = supervisordPid(s.runDir)
  if (pid === null) {
    const left = stackProcesses(s.runDir)
    if (left.length === 0) return say('not running')
    await cleanLeftovers(s, say)
    return say('stopped')
  }
  say(`stopping supervisord (pid ${pid}) and every program, gracefully`)
  process.kill(pid, 'SIGTERM')
  const deadline = Date.now() + timeoutMs
  while (isAlive(pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100))
  if (isAlive(pid)) throw new ForkyardError(codes.CONTROL, `supervisord (pid ${pid}) still running after ${timeoutMs / 1000} s`)
  // Programs that outlived supervisord (it gave up on them, or lost track): none may remain.
  await cleanLeftovers(s, say)
  say('stopped')
}
