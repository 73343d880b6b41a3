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
 * Also the container's entrypoint helper: `node dist/stack/docker.js env /app/.env CONF` prints,
 * as shell `export` lines, the .env settings that supervisord's own configuration CONF names
 * (%(ENV_FORKYARD_APP)s...), except the container's layout that the Dockerfile fixes. Only those:
 * every forkyard program reads /app/.env itself (its working directory is /app), and the server
 * watches it, so an edit of the bind-mounted file reaches the running stack; exporting the other
 * settings would make them environment variables, which win over the file and pin them.
 */
import { spawnSync, type SpawnSyncOptions } from 'node:child_process'
import { chownSync, lstatSync, mkdirSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parse } from 'dotenv'
import { ForkyardError, codes } from '../errors.js'
import { stackEnv, stackPaths, supervisordPid } from './launcher.js'

/** The container user (Dockerfile: useradd --uid 10001). */
export const containerUid = 10001
export const containerGid = 10001

/** Variables the Dockerfile sets for the container's layout; a value in .env does not change them. */
export const containerLayout = [
  'FORKYARD_HOME',
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

function shellQuote(v: string): string {
  return `'${v.replace(/'/g, `'\\''`)}'`
}

/**
 * `export NAME='value'` lines for the settings of .env (text) that supervisord's configuration
 * (conf) uses as %(ENV_NAME)s, except the container's layout.
 */
export function dotenvExports(text: string, conf: string): string {
  const used = new Set([...conf.matchAll(/%\(ENV_([A-Za-z_][A-Za-z0-9_]*)\)s/g)].map((m) => m[1]!))
  for (const k of containerLayout) used.delete(k)
  return Object.entries(parse(text))
    .filter(([k]) => used.has(k))
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`)
    .join('')
}

export type DockerMode = 'auto' | 'never' | 'always'

export function dockerMode(env: NodeJS.ProcessEnv): DockerMode {
  const v = (env.FORKYARD_DOCKER ?? '').trim().toLowerCase()
  if (v === '' || v === 'auto') return 'auto'
  if (['0', 'false', 'no', 'never', 'native'].includes(v)) return 'never'
  if (['1', 'true', 'yes', 'always'].includes(v)) return 'always'
  throw new ForkyardError(codes.CONFIG, `Expected FORKYARD_DOCKER to be auto, 0 (native) or 1 (Docker Compose), got ${JSON.stringify(env.FORKYARD_DOCKER)}`)
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
  project: string
  envFile: string
  env: NodeJS.ProcessEnv
}

function run(cmd: string[], env: NodeJS.ProcessEnv, inherit: boolean, timeoutMs: number): { status: number | null; out: string } {
  const r = spawnSync(cmd[0]!, cmd.slice(1), { env, encoding: 'utf8', stdio: inherit ? 'inherit' : 'pipe', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })
  return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? r.error.message : ''}` }
}

export function composeRun(p: ComposeProject, args: string[], inherit = true, timeoutMs = 30 * 60_000): { status: number | null; out: string } {
  const file = join(p.home, 'docker-compose.yml')
  return run([...p.compose, '-p', p.project, '-f', file, '--project-directory', p.home, '--env-file', p.envFile, ...args], p.env, inherit, timeoutMs)
}

/** The id of the project's app container (running only, or any), or null. */
export function containerId(p: ComposeProject, runningOnly: boolean): string | null {
  const filters = ['--filter', `label=com.docker.compose.project=${p.project}`, '--filter', `label=com.docker.compose.service=${service}`]
  const r = run(['docker', 'ps', '-q', ...(runningOnly ? [] : ['-a']), ...filters], p.env, false, 15_000)
  const id = r.status === 0 ? r.out.trim().split('\n')[0] : undefined
  return id === undefined || id === '' ? null : id
}

/** Log files written natively as root become the container user's, so that it can append and rotate. */
function chownTree(dir: string, uid: number, gid: number): void {
  const st = lstatSync(dir)
  if (st.uid !== uid || st.gid !== gid) chownSync(dir, uid, gid)
  if (!st.isDirectory()) return
  for (const name of readdirSync(dir)) {
    const path = join(dir, name)
    const s = lstatSync(path)
    if (s.isDirectory()) chownTree(path, uid, gid)
    else if (s.uid !== uid || s.gid !== gid) chownSync(path, uid, gid)
  }
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

async function waitReady(p: ComposeProject, url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (let i = 0; Date.now() < deadline && i < 10_000; i++) {
    try {
      const res = await probe(new URL('readyz', url).href)
      last = `${res.status} ${res.text}`
      if (res.status === 200) return
    } catch (err) {
      last = (err as Error).message
    }
    // A container that exited (bad settings, an app that fails to boot) will not become ready.
    const id = containerId(p, false)
    if (i % 8 === 0 && id !== null) {
      const state = run(['docker', 'inspect', '-f', '{{.State.Status}} {{.State.ExitCode}} {{.RestartCount}}', id], p.env, false, 15_000).out.trim()
      if (state.startsWith('exited') || state.startsWith('dead')) last = `container ${state}: ${last}`
    }
    await new Promise((r) => setTimeout(r, 500))
  }
  const logs = composeRun(p, ['logs', '--no-color', '--tail', '60'], false, 60_000).out
  throw new ForkyardError(codes.BOOT_FAILED, `The stack did not become ready within ${timeoutMs / 1000} s. Last /readyz: ${last.slice(0, 2000)}\n${logs}\nSee the logs: make logs`)
}

/**
 * Runs `command` (up, down, ps, reload) through Docker Compose when that applies and returns true;
 * returns false to let the native launcher run. up: an engine and compose answer and no native
 * supervisord runs. down, ps, reload: the project's container exists.
 */
export async function dockerStack(command: string, home: string, env: NodeJS.ProcessEnv, envFile?: string): Promise<boolean> {
  const mode = dockerMode(env)
  if (mode === 'never') return false
  const compose = findCompose(env)
  if (compose === null) {
    if (mode === 'always') throw new ForkyardError(codes.CONFIG, 'FORKYARD_DOCKER=1 but no Docker engine answered `docker info` within 5 s, or neither `docker compose` nor `docker-compose` exists')
    return false
  }
  // The compose project is the kit's checkout: the image is built from it. Settings are validated
  // before `up` (the app path is the container's, so it is not looked for on the host).
  const s = command === 'up' ? stackEnv(home, home, env, {}, { checkApp: false }) : { ...stackPaths(home, home, env, {}), port: Number(env.FORKYARD_PORT?.trim() || 8080), url: '' }
  if (mode === 'auto' && supervisordPid(s.runDir) !== null) return false
  const p: ComposeProject = {
    compose,
    home,
    project: env.COMPOSE_PROJECT_NAME?.trim() || 'forkyard',
    envFile: resolve(envFile ?? join(home, '.env')),
    env: { ...env, FORKYARD_PORT: String(s.port), FORKYARD_HOST_LOG_DIR: s.logDir, FORKYARD_HOST_DATA_DIR: resolve(home, env.FORKYARD_HOST_DATA_DIR?.trim() || 'data') },
  }
  p.env.FORKYARD_HOST_ENV_FILE = p.envFile
  // The ./logs and ./data bind mounts must be writable by the container user: as root, hand the
  // directories to the image's user; otherwise run the container as this user.
  const uid = process.getuid?.() ?? containerUid
  p.env.FORKYARD_UID = String(uid === 0 ? containerUid : uid)
  p.env.FORKYARD_GID = String(uid === 0 ? containerGid : (process.getgid?.() ?? containerGid))

  switch (command) {
    case 'up': {
      for (const dir of [s.logDir, p.env.FORKYARD_HOST_DATA_DIR!]) {
        mkdirSync(dir, { recursive: true })
        if (uid === 0) chownTree(dir, containerUid, containerGid)
      }
      readFileSync(p.envFile) // a missing file would be bind-mounted as a new directory
      say(`Docker Compose (${compose.join(' ')}, project ${p.project}): building and starting; logs in ${s.logDir}`)
      const r = composeRun(p, ['up', '-d', '--build', '--remove-orphans'])
      if (r.status !== 0) throw new ForkyardError(codes.BOOT_FAILED, `${compose.join(' ')} up failed with exit code ${r.status}`)
      await waitReady(p, s.url, 180_000)
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
      composeRun(p, ['ps'], true, 60_000)
      run(['docker', 'exec', id, 'supervisorctl', '-c', '/app/supervisor/supervisord.conf', 'status'], p.env, true, 30_000)
      run(['docker', 'exec', id, 'node', '/app/dist/bin/forkyard.js', 'status'], p.env, true, 30_000)
      return true
    }
    case 'reload': {
      const id = containerId(p, true)
      if (id === null) return false
      const r = run(['docker', 'exec', id, 'node', '/app/dist/bin/forkyard.js', 'reload'], p.env, true, 11 * 60_000)
      process.exit(r.status ?? 1)
      return true
    }
    default:
      return false
  }
}

// The entrypoint helper: `node dist/stack/docker.js env ENV_FILE SUPERVISORD_CONF`.
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url) && process.argv[2] === 'env') {
  process.stdout.write(dotenvExports(readFileSync(process.argv[3] ?? '.env', 'utf8'), readFileSync(process.argv[4] ?? 'supervisor/supervisord.conf', 'utf8')))
}
