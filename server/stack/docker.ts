/**
 * The stack in a container: `forkyard up | down | ps | reload` through Docker Compose
 * (docker-compose.yml, Dockerfile) when a Docker engine answers and a compose command exists,
 * else the native launcher runs unchanged. `forkyard logs` needs nothing here: the container
 * writes its JSON log files into the same host directory (bind-mounted), so it reads them as is.
 *
 * FORKYARD_DOCKER (from the environment or .env): `auto` (default), `0` never (always native),
 * `1` always (an error when no engine or compose answers). COMPOSE_PROJECT_NAME names the compose
 * project (default `forkyard`). The container's /app/data (durable task queue, FORKYARD_TASKS_DIR
 * ./data/tasks) is the host's ./data, or FORKYARD_HOST_DATA_DIR.
 *
 * Users: as root, the container starts as root and its entrypoint (docker/entrypoint.sh) hands
 * ./logs and ./data to FORKYARD_UID:FORKYARD_GID (10001:10001) and drops to that user; `up` makes
 * .env readable by that group. Otherwise the container runs as the caller from the start, so that
 * ./logs and ./data stay the caller's. Either way every process of the stack runs as that user,
 * and `docker exec` here uses it too.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, statSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { ForkyardError, codes, exitCodes } from '../errors.js'
import { restartTargets, stackEnv, stackPaths, supervisordPid } from './launcher.js'
import { stackSchema, type StackConfig } from '../config/stack.js'

/** The container user (Dockerfile: useradd --uid 10001). */
export const containerUid = 10001
export const containerGid = 10001

/** Variables the Dockerfile sets for the container's layout; a value in .env does not change them. */
export const containerLayout = [
  'FORKYARD_HOME',
  'FORKYARD_PROJECT_DIR',
  'FORKYARD_NODE',
  'FORKYARD_RUN_DIR',
  'FORKYARD_PIDFILE',
  'FORKYARD_LOG_DIR',
  'FORKYARD_LISTEN_HOST',
  'FORKYARD_PORT',
  'FORKYARD_BIND',
  'FORKYARD_READY_CHECKS',
] as const

const service = 'app'
const say = (m: string): void => void process.stdout.write(`forkyard: ${m}\n`)

export type DockerMode = StackConfig['docker']

/** FORKYARD_DOCKER, read by the stack schema's own parser (config/stack.ts). */
export function dockerMode(env: NodeJS.ProcessEnv): DockerMode {
  const field = stackSchema.docker
  return field.parse(field.env, env[field.env] ?? field.default)
}

/** FORKYARD_COMPOSE_FILES: the base file, then overlays such as docker-compose.redis.yml. */
export function composeFiles(env: NodeJS.ProcessEnv): string[] {
  const field = stackSchema.composeFiles
  return field.parse(field.env, env[field.env]?.trim() || field.default)
}

/** The compose command (`docker compose` or `docker-compose`) when an engine answers within 5 s, else null. */
export function findCompose(env: NodeJS.ProcessEnv): string[] | null {
  const quiet: SpawnSyncOptions = { env, stdio: 'ignore', timeout: 5000 }
  if (spawnSync('docker', ['info', '--format', '{{.ServerVersion}}'], quiet).status !== 0) return null
  for (const cmd of [['docker', 'compose'], ['docker-compose']]) {
    if (spawnSync(cmd[0]!, [...cmd.slice(1), 'version'], { ...quiet, timeout: 15_000 }).status === 0) return cmd
  }
  return null
}

export interface ComposeProject {
  compose: string[]
  home: string
  /** FORKYARD_COMPOSE_FILES, relative to home: docker-compose.yml, then any overlay. */
  files: string[]
  project: string
  envFile: string
  env: NodeJS.ProcessEnv
  /** uid:gid every process of the stack runs as; `docker exec` uses it too. */
  user: string
}

function run(cmd: string[], env: NodeJS.ProcessEnv, inherit: boolean, timeoutMs: number): { status: number | null; out: string } {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { env, encoding: 'utf8', stdio: inherit ? 'inherit' : 'pipe', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? r.error.message : ''}` }
}

export function composeRun(p: ComposeProject, args: string[], inherit = true, timeoutMs = 30 * 60_000): { status: number | null; out: string } {
  const files = p.files.flatMap((f) => ['-f', resolve(p.home, f)])
  return run([...p.compose, '-p', p.project, ...files, '--project-directory', p.home, '--env-file', p.envFile, ...args], p.env, inherit, timeoutMs)
}

/** The id of the project's app container (running only, or any), or null. */
export function containerId(p: ComposeProject, runningOnly: boolean): string | null {
  const filters = ['--filter', `label=com.docker.compose.project=${p.project}`, '--filter', `label=com.docker.compose.service=${service}`]
  const r = run(['docker', 'ps', '-q', ...(runningOnly ? [] : ['-a']), ...filters], p.env, false, 15_000)
  const id = r.status === 0 ? r.out.trim().split('\n')[0] : undefined
  return id === undefined || id === '' ? null : id
}

/** `docker exec` as the stack's user: root in the container has no capability to reach its sockets. */
function execArgs(p: ComposeProject, id: string, cmd: string[], tty = false): string[] {
  return ['docker', 'exec', ...(tty ? ['-t'] : []), '-u', p.user, id, ...cmd]
}

/**
 * The uid and gid every process of the container runs as, and the user the container starts as:
 * as root, root (the entrypoint hands ./logs and ./data to FORKYARD_UID:FORKYARD_GID, default
 * 10001:10001, then drops to it); otherwise the caller, from the start, so that ./logs and ./data
 * stay the caller's.
 */
export function containerUser(env: NodeJS.ProcessEnv, uid = process.getuid?.() ?? 0, gid = process.getgid?.() ?? 0): { uid: number; gid: number; start: string } {
  if (uid !== 0) return { uid, gid, start: `${uid}:${gid}` }
  const id = (name: 'FORKYARD_UID' | 'FORKYARD_GID', fallback: number): number => {
    const raw = env[name]?.trim() ?? ''
    if (raw === '') return fallback
    if (!/^[1-9]\d{0,9}$/.test(raw)) throw new ForkyardError(codes.CONFIG, `Expected ${name} to be the numeric id of a non-root user for the container, got ${JSON.stringify(env[name])}`)
    return Number(raw)
  }
  return { uid: id('FORKYARD_UID', containerUid), gid: id('FORKYARD_GID', containerGid), start: '0:0' }
}

/** Whether a file with this owner and mode can be read by uid:gid (no supplementary groups). */
export function readableBy(st: { uid: number; gid: number; mode: number }, uid: number, gid: number): boolean {
  if (st.uid === uid) return (st.mode & 0o400) !== 0
  if (st.gid === gid) return (st.mode & 0o040) !== 0
  return (st.mode & 0o004) !== 0
}

/**
 * Run as root: .env as `make up` creates it (root, 0600) cannot be read by the container's user.
 * Give it to that user's group, readable, never to others; returns what it did, or null.
 */
export function shareWithGroup(file: string, uid: number, gid: number): string | null {
  const st = statSync(file)
  if (readableBy(st, uid, gid)) return null
  const mode = (st.mode & 0o770) | 0o040
  chownSync(file, st.uid, gid)
  chmodSync(file, mode)
  return `${file}: group ${gid} (the container's user ${uid}:${gid}) may read it now (chgrp ${gid}, chmod ${mode.toString(8).padStart(4, '0')}); others still may not`
}

/**
 * GET with a deadline kept by a referenced timer: Docker's port proxy accepts a connection while
 * nothing listens inside the container yet and then holds it, and a fetch bounded only by
 * AbortSignal.timeout (an unreferenced timer) then leaves an empty event loop: node exits mid-wait.
 */
export async function probe(url: string, timeoutMs = 2000): Promise<{ status: number; text: string }> {
  const ac = new AbortController()
  const timer = setTimeout(() => ac.abort(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs)
  try {
    const res = await fetch(url, { signal: ac.signal })
    return { status: res.status, text: await res.text() }
  } finally {
    clearTimeout(timer)
  }
}

interface ContainerState {
  status: string
  exitCode: number
  restarts: number
}

function containerState(p: ComposeProject, id: string): ContainerState | null {
  const r = run(['docker', 'inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}', id], p.env, false, 15_000)
  const m = /^(\S+) (-?\d+) (\d+)$/.exec(r.out.trim())
  return r.status === 0 && m !== null ? { status: m[1]!, exitCode: Number(m[2]), restarts: Number(m[3]) } : null
}

/**
 * The container's own output (compose logs), without compose's `app_1  | ` prefix and with a run
 * of identical lines (a restart loop) shown once, and the line that says why it failed: the last
 * `forkyard: ...` (a setting, from `forkyard check` or a program) or `forkyard-entrypoint: ...`
 * (a file or directory) line, if any, with the container's /app/.env named as the host's file.
 */
export function containerOutput(p: ComposeProject, tail = 40): { text: string; reason: string | null } {
  const raw = composeRun(p, ['logs', '--no-color', '--tail', String(tail)], false, 60_000).out
  const lines = raw.split('\n').filter((l) => !/^Attaching to /.test(l)).map((l) => l.replace(/^[\w.-]+\s+\| ?/, ''))
  const text: string[] = []
  for (let i = 0; i < lines.length; ) {
    let n = 1
    while (i + n < lines.length && lines[i + n] === lines[i]) n++
    text.push(n > 1 && lines[i]!.trim() !== '' ? `${lines[i]}  (${n} times)` : lines[i]!)
    i += n
  }
  const reason = lines.filter((l) => /^forkyard(-entrypoint)?: /.test(l) && !/ are valid$/.test(l)).at(-1)
  return { text: text.join('\n').trim(), reason: reason === undefined ? null : reason.replace(/^forkyard(-entrypoint)?: /, '').replaceAll('/app/.env', p.envFile) }
}

/**
 * Polls /readyz until 200. Fails at once, with the container's own output and the reason first,
 * when the container exits or restarts (the entrypoint refused a setting or a file: Docker's
 * restart policy would loop on it) or when supervisord gives a program up (FATAL).
 */
async function waitReady(p: ComposeProject, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  let id: string | null = null
  let baseline: number | null = null
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    try {
      const res = await probe(new URL('readyz', url).href)
      last = `${res.status} ${res.text}`
      if (res.status === 200) return
    } catch (err) {
      last = (err as Error).message
    }
    id ??= containerId(p, false)
    const state = id === null ? null : containerState(p, id)
    if (state !== null) {
      baseline ??= state.restarts
      if (state.restarts > baseline || ['restarting', 'exited', 'dead'].includes(state.status)) {
        // Stopped, so that it does not restart forever; its output stays for `docker compose logs`.
        composeRun(p, ['stop', '-t', '10'], false, 60_000)
        const out = containerOutput(p)
        // A reason line comes from the entrypoint or `forkyard check` (a setting, or a file or
        // directory the container cannot use): exit 2, as for a bad setting natively.
        throw new ForkyardError(out.reason !== null ? codes.CONFIG : codes.BOOT_FAILED, `${out.reason ?? `the container exited with code ${state.exitCode}`}\nThe container stopped before it was ready (last exit code ${state.exitCode}, ${state.restarts - baseline} restart(s)); stopped it. Its output (docker compose logs):\n${out.text}\nFix what the first line says, then make up again.`)
      }
      if (i % 8 === 7 && state.status === 'running') {
        const st = run(execArgs(p, id!, ['supervisorctl', '-c', '/app/supervisor/supervisord.conf', 'status']), p.env, false, 15_000).out
        const fatal = [...st.matchAll(/^(\S+)\s+FATAL/gm)].map((m) => m[1]!)
        if (fatal.length > 0) {
          const out = containerOutput(p, 80)
          throw new ForkyardError(codes.BOOT_FAILED, `${fatal.join(', ')} failed to start (supervisord gave up: FATAL)${out.reason !== null ? `: ${out.reason}` : ''}\nThe container's output (docker compose logs):\n${out.text}\n${st}The container keeps running: make down stops it; make logs shows every log.`)
        }
      }
    }
    await new Promise((r) => setTimeout(r, 500))
  }
  const out = containerOutput(p, 60)
  throw new ForkyardError(codes.BOOT_FAILED, `The stack did not become ready within ${timeoutMs / 1000} s${out.reason !== null ? `: ${out.reason}` : ''}. Last /readyz: ${last.slice(0, 2000)}\nThe container's output (docker compose logs):\n${out.text}\nThe container keeps running: make down stops it; make logs shows every log.`)
}

/**
 * Runs `command` (up, down, ps, reload) through Docker Compose when that applies and returns true;
 * returns false to let the native launcher run. up: an engine and compose answer and no native
 * supervisord runs. down, ps, reload: the project's container exists.
 */
export async function dockerStack(command: string, home: string, env: NodeJS.ProcessEnv, envFile?: string, args: string[] = []): Promise<boolean> {
  const mode = dockerMode(env)
  if (mode === 'never') return false
  const compose = findCompose(env)
  if (compose === null) {
    if (mode === 'always') throw new ForkyardError(codes.CONFIG, 'FORKYARD_DOCKER=1 but no Docker engine answered `docker info` within 5 s, or neither `docker compose` nor `docker-compose` exists')
    return false
  }
  // The compose project is the kit's checkout: the image is built from it. Settings are validated
  // before `up` (the app path is the container's, so it is not looked for on the host); the
  // container's entrypoint validates them again, as the container sees them.
  const s = command === 'up' ? stackEnv(home, home, env, {}, { checkApp: false }) : { ...stackPaths(home, home, env, {}), port: Number(env.FORKYARD_PORT?.trim() || 8080), url: '' }
  if (mode === 'auto' && supervisordPid(s.runDir) !== null) return false
  const user = containerUser(env)
  const p: ComposeProject = {
    compose,
    home,
    files: composeFiles(env),
    project: env.COMPOSE_PROJECT_NAME?.trim() || 'forkyard',
    envFile: resolve(envFile ?? join(home, '.env')),
    env: { ...env, FORKYARD_PORT: String(s.port), FORKYARD_HOST_LOG_DIR: s.logDir, FORKYARD_HOST_DATA_DIR: resolve(home, env.FORKYARD_HOST_DATA_DIR?.trim() || 'data') },
    user: `${user.uid}:${user.gid}`,
  }
  p.env.FORKYARD_HOST_ENV_FILE = p.envFile
  p.env.FORKYARD_UID = String(user.uid)
  p.env.FORKYARD_GID = String(user.gid)
  p.env.FORKYARD_CONTAINER_USER = user.start

  switch (command) {
    case 'up': {
      // Created here rather than by Docker (which would make them root's); the entrypoint hands
      // them to the stack's user when it cannot write them.
      for (const dir of [s.logDir, p.env.FORKYARD_HOST_DATA_DIR!]) mkdirSync(dir, { recursive: true })
      statSync(p.envFile) // a missing file would be bind-mounted as a new directory
      if (user.start === '0:0') {
        const shared = shareWithGroup(p.envFile, user.uid, user.gid)
        if (shared !== null) say(shared)
      }
      say(`Docker Compose (${compose.join(' ')}, project ${p.project}): building and starting; logs in ${s.logDir}`)
      const r = composeRun(p, ['up', '-d', '--build', '--remove-orphans'])
      if (r.status !== 0) throw new ForkyardError(codes.BOOT_FAILED, `${compose.join(' ')} up failed with exit code ${r.status}`)
      await waitReady(p, s.url, 180_000)
      // Compose keeps a running container whose configuration did not change, whatever .env says
      // now: check the settings as the container sees them, as a native `make up` always does.
      const id = containerId(p, true)
      const check = id === null ? null : run(execArgs(p, id, ['node', '/app/dist/bin/forkyard.js', 'check']), p.env, false, 60_000)
      if (check !== null && check.status !== 0) {
        const why = check.out.trim().split('\n').filter((l) => l.startsWith('forkyard: ')).at(-1)?.replace(/^forkyard: /, '').replaceAll('/app/.env', p.envFile) ?? check.out.trim()
        throw new ForkyardError(codes.CONFIG, `${why}\nThe container keeps running as it started, but a program that restarts would exit on this .env. Fix .env, then make up again.`)
      }
      say(`ready (container): ${s.url}  (make logs, make status, make reload, make down)`)
      return true
    }
    case 'down': {
      if (containerId(p, false) === null) return false
      say(`stopping the container gracefully (project ${p.project})`)
      const r = composeRun(p, ['down', '--remove-orphans'], true, 5 * 60_000)
      if (r.status !== 0) throw new ForkyardError(codes.CONTROL, `${compose.join(' ')} down failed with exit code ${r.status}`)
      say('stopped')
      return true
    }
    case 'ps': {
      const id = containerId(p, true)
      if (id === null) return false
      // The same table as natively, from inside the container (its supervisord, its /proc).
      if (!args.includes('--json')) composeRun(p, ['ps'], true, 60_000)
      const r = run(execArgs(p, id, ['env', 'FORKYARD_DOCKER=0', 'node', '/app/dist/bin/forkyard.js', 'ps', ...args.filter((a) => a === '--json')]), p.env, true, 30_000)
      if (r.status !== 0) process.exit(r.status ?? exitCodes.failure)
      return true
    }
    case 'top': {
      const id = containerId(p, true)
      if (id === null) return false
      // No timeout: top runs until Ctrl-C (or --count frames).
      const [cmd, ...rest] = execArgs(p, id, ['env', 'FORKYARD_DOCKER=0', 'node', '/app/dist/bin/forkyard.js', 'top', ...args], process.stdout.isTTY === true)
      const r = spawnSync(cmd!, rest, { env: p.env, stdio: 'inherit' })
      process.exit(r.status ?? exitCodes.failure)
      return true
    }
    case 'restart': {
      const id = containerId(p, true)
      if (id === null) return false
      const r = run(execArgs(p, id, ['supervisorctl', '-c', '/app/supervisor/supervisord.conf', 'restart', ...restartTargets(args)]), p.env, true, 5 * 60_000)
      process.exit(r.status ?? exitCodes.failure)
      return true
    }
    case 'reload': {
      const id = containerId(p, true)
      if (id === null) return false
      const r = run(execArgs(p, id, ['node', '/app/dist/bin/forkyard.js', 'reload']), p.env, true, 11 * 60_000)
      process.exit(r.status ?? exitCodes.failure)
      return true
    }
    case 'status': {
      // The arbiter's socket is in the container's tmpfs: ask from inside, where it is.
      const id = containerId(p, true)
      if (id === null) return false
      const r = run(execArgs(p, id, ['node', '/app/dist/bin/forkyard.js', 'status', ...args]), p.env, true, 60_000)
      process.exit(r.status ?? exitCodes.failure)
      return true
    }
    default:
      return false
  }
}
