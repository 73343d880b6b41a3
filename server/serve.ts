/**
 * serve(): the programmatic form of `forkyard serve <app>`. Runs the arbiter in this process
 * (which must be the cluster primary) and resolves once every worker is ready.
 */
import cluster from 'node:cluster'
import { dirname, join, resolve } from 'node:path'
import { watchSources } from './arbiter/dev-watch.js'
import { PrettyOutput } from './log/pretty-output.js'
import { Arbiter } from './arbiter/arbiter.js'
import { cpuCount } from './config/cpus.js'
import { loadConfig, type ConfigOverrides } from './config/load.js'
import { loadLogConfig } from './config/logging.js'
import { existsSync } from 'node:fs'
import { definedEnv, readEnvFile, snapshot } from './config/env-file.js'
import { EnvWatcher } from './config/watch.js'
import { ForkyardError, codes } from './errors.js'
import { ProcessShell } from './process/shell.js'
import { afterExitOf } from './process/parent.js'

export interface ServeOptions extends ConfigOverrides {
  /** Path of the app module (default export: a node:http request listener). */
  app: string
  /** `app` is FORKYARD_APP: a change of it in the watched .env reloads the workers onto the new module. */
  appFromSettings?: boolean
  /** Environment to read FORKYARD_* from (default process.env; load .env yourself with dotenv). */
  env?: NodeJS.ProcessEnv
  /**
   * Install SIGHUP/SIGTERM/SIGINT/SIGTTIN/SIGTTOU handlers and exit when stopped; an uncaught
   * exception is logged as fatal and ends the process (default true).
   */
  handleSignals?: boolean
  /**
   * The .env file to watch: valid changes reach every worker within a second (or trigger a rolling
   * reload for settings that need new processes); bad ones are refused and logged. Default: none.
   */
  envFile?: string
  /** The process environment before .env was loaded: its keys win over the file (default: `env`). */
  baseEnv?: NodeJS.ProcessEnv
  /** Development: reload workers when a source file under the app's directory changes; pretty logs on a terminal. */
  dev?: boolean
  /** Stop gracefully (as on SIGTERM) when the parent process dies: set under supervisord. */
  dieWithParent?: boolean
}

export async function serve(options: ServeOptions): Promise<Arbiter> {
  if (!cluster.isPrimary) {
    throw new ForkyardError(codes.CONFIG, 'serve() must run in the primary process, not in a cluster worker')
  }
  const { app, appFromSettings = false, env = process.env, handleSignals = true, envFile, baseEnv, dev = false, dieWithParent = false, ...overrides } = options
  const config = loadConfig(env, overrides)
  // Workers read all of these too (publish(), /readyz, config.get): refuse bad values here, before
  // any worker starts.
  const fileKeys = envFile !== undefined && existsSync(envFile) ? Object.keys(readEnvFile(envFile)) : []
  const initial = snapshot(definedEnv(env), fileKeys)
  const shell = new ProcessShell({
    svc: 'server',
    ...(dev && process.stdout.isTTY === true ? { output: new PrettyOutput() } : { logs: loadLogConfig(env) }),
    level: config.logLevel,
    base: { role: 'arbiter' },
    fatal: handleSignals,
  })
  const { output, log } = shell
  const cpus = cpuCount()
  const workers = config.workers === 0 ? cpus.count : config.workers
  log.info(
    { workers, workersSetting: config.workers, cpus: cpus.count, cpuSource: cpus.source, affinity: cpus.affinity, quota: cpus.quota, bind: config.bind.map((b) => b.text), scheduling: config.scheduling, node: process.version, app: resolve(app) },
    `starting ${workers} worker${workers === 1 ? '' : 's'}`,
  )
  const watcher = envFile !== undefined ? new EnvWatcher(resolve(envFile), baseEnv ?? env, initial, log) : null
  const arbiter = new Arbiter({ config, env, app: resolve(app), appFromSettings, workers, log, output, watcher, overrides, configVersion: initial.version, proxied: dieWithParent })
  if (handleSignals) shell.handleSignals(arbiter.signalHandlers((code) => shell.exit(code)))
  // nginx goes first (it stops accepting and finishes its requests, which this server keeps serving).
  if (dieWithParent) {
    shell.dieWithParent('the parent process (supervisord) is gone: stopping gracefully once nginx has', () => {
      void afterExitOf(join(config.runDir, 'nginx.pid'), 10_000)
        .then(() => arbiter.close())
        .then((code) => shell.exit(code))
    })
  }
  try {
    await arbiter.start()
  } catch (err) {
    // The caller (the CLI) exits on this error: the arbiter's last lines must be out first.
    await shell.flushed()
    throw err
  }
  if (dev) {
    const dir = dirname(resolve(app))
    watchSources(dir, log, () => arbiter.reload())
    log.info({ dir }, 'development mode: workers reload when a source file changes')
  }
  return arbiter
}

