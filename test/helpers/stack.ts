/**
 * The whole stack (`forkyard up`: supervisord, nginx, server, push, bridge) for a test, in its own
 * run and log directories on free ports; torn down (`forkyard down`) at the end, whatever happens.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { bin, freePort, root, tempDir } from './server.js'

export interface StackRun {
  env: Record<string, string>
  dir: string
  /** Where `forkyard` runs and every program's working directory: `dir` with `ownProject`, else the checkout. */
  projectDir: string
  runDir: string
  logDir: string
  port: number
  url: (path: string) => string
  cli: (...args: string[]) => { status: number | null; stdout: string; stderr: string }
  /** pid of a supervised program (bridge, push, server, nginx wrapper) from supervisorctl. */
  programPid: (name: string) => number | null
  supervisordPid: () => number
}

export interface StackRunOptions {
  /**
   * Run the stack as an app of its own: `dir` is the project directory, with a .env holding these
   * values, and every program runs there (the kit stays the checkout). Without it the project is
   * the checkout itself, like `make up` in a clone.
   */
  ownProject?: Record<string, string>
}

export async function startStackRun(t: TestContext, extra: Record<string, string> = {}, options: StackRunOptions = {}): Promise<StackRun> {
  const dir = tempDir('fy-stack-')
  const projectDir = options.ownProject === undefined ? root : dir
  if (options.ownProject !== undefined) {
    writeFileSync(join(dir, '.env'), Object.entries(options.ownProject).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 })
  }
  const port = await freePort()
  const pushPort = await freePort()
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    FORKYARD_RUN_DIR: join(dir, 'run'),
    FORKYARD_LOG_DIR: join(dir, 'logs'),
    FORKYARD_TASKS_DIR: join(dir, 'tasks'),
    FORKYARD_BRIDGE_DATA_DIR: join(dir, 'bridge-data'),
    FORKYARD_PORT: String(port),
    FORKYARD_PUSH_BIND: `127.0.0.1:${pushPort}`,
    FORKYARD_WORKERS: '2',
    FORKYARD_GRACEFUL_TIMEOUT: '10s',
    // The native stack, even where a Docker engine answers (the container has its own test).
    FORKYARD_DOCKER: '0',
    FORKYARD_PUSH_HEARTBEAT_STALE: '2s',
    ...extra,
  }
  const cli = (...args: string[]): { status: number | null; stdout: string; stderr: string } => {
    const r = spawnSync(process.execPath, [bin, ...args], { cwd: projectDir, env, encoding: 'utf8', timeout: 180_000 })
    return { status: r.status, stdout: r.stdout ?? '', stderr: r.stderr ?? '' }
  }
  const run: StackRun = {
    env,
    dir,
    projectDir,
    runDir: env.FORKYARD_RUN_DIR!,
    logDir: env.FORKYARD_LOG_DIR!,
    port,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    cli,
    programPid: (name) => {
      const r = spawnSync('supervisorctl', ['-c', join(root, 'supervisor/supervisord.conf'), 'status', name], { env: { ...env, FORKYARD_HOME: root, FORKYARD_PROJECT_DIR: root, FORKYARD_NODE: process.execPath }, encoding: 'utf8' })
      const m = /RUNNING\s+pid (\d+)/.exec(r.stdout ?? '')
      return m === null ? null : Number(m[1])
    },
    supervisordPid: () => Number(readFileSync(join(env.FORKYARD_RUN_DIR!, 'supervisord.pid'), 'utf8').trim()),
  }
  t.after(() => {
    const down = cli('down')
    if (down.status !== 0) {
      try {
        process.kill(run.supervisordPid(), 'SIGKILL')
      } catch {
        // already gone
      }
    }
  })
  const up = cli('up')
  if (up.status !== 0) throw new Error(`forkyard up failed (${up.status}):\n${up.stdout}\n${up.stderr}`)
  return run
}
