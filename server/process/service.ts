/**
 * Runs the bridge or the push process in the foreground, in the process shell (shell.ts):
 * root logger, graceful stop on SIGTERM and SIGINT (queued, acted on once), exit 0 when clean.
 */
import type { Logger } from 'pino'
import { existsSync } from 'node:fs'
import { resolve } from 'node:path'
import { definedEnv, readEnvFile, snapshot } from '../config/env-file.js'
import { loadLogConfig } from '../config/logging.js'
import { config as runtimeConfig } from '../config/runtime.js'
import { EnvWatcher } from '../config/watch.js'
import { exitCodes } from '../errors.js'
import { afterExitOf } from './parent.js'
import { ProcessShell } from './shell.js'
import { writeState } from './state.js'

export interface Service {
  close(): Promise<void>
  /** A validated .env change: 'live' when applied, 'restart' when only a new process can take it. */
  reconfigure?: (env: NodeJS.ProcessEnv) => 'live' | 'restart'
}

export interface ServiceOptions {
  /** The .env file to watch (every process of the deployment follows it). */
  envFile?: string
  /** The environment before .env was loaded; its keys win over the file. */
  baseEnv?: NodeJS.ProcessEnv
  /** Stop gracefully when the parent process (supervisord) dies. */
  dieWithParent?: boolean
  /** When the parent dies, stop only once the process of this pidfile has exited (at most `ms`). */
  outlive?: { pidfile: string; ms: number }
}

export async function runService(svc: string, level: string, start: (log: Logger) => Promise<Service>, options: ServiceOptions = {}): Promise<void> {
  const shell = new ProcessShell({ svc, logs: loadLogConfig(process.env), level })
  const { output, log } = shell
  let started: Service
  try {
    started = await start(log)
  } catch (err) {
    log.fatal({ err }, `${svc} failed to start`)
    return shell.exit(exitCodes.failure)
  }
  const service = started
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'stopping')
    const force = setTimeout(() => {
      log.error('did not stop within 10 s: exiting')
      shell.exit(exitCodes.failure)
    }, 10_000)
    force.unref()
    service.close().then(
      () => shell.exit(exitCodes.ok),
      (err: unknown) => {
        log.error({ err }, 'stop failed')
        shell.exit(exitCodes.failure)
      },
    )
  }
  shell.handleSignals({
    // SIGTERM (supervisord's stopsignal): graceful stop, then exit.
    SIGTERM: () => stop('SIGTERM'),
    // SIGINT (Ctrl-C in a terminal): the same graceful stop.
    SIGINT: () => stop('SIGINT'),
  })
  if (options.dieWithParent === true) {
    const outlive = options.outlive
    shell.dieWithParent('the parent process (supervisord) is gone: stopping gracefully', () => {
      if (outlive === undefined) return stop('SIGTERM')
      void afterExitOf(outlive.pidfile, outlive.ms).then(() => stop('SIGTERM'))
    })
  }
  if (options.envFile !== undefined && existsSync(options.envFile)) {
    const env = definedEnv(process.env)
    let watcher: EnvWatcher
    try {
      watcher = new EnvWatcher(resolve(options.envFile), options.baseEnv ?? process.env, snapshot(env, Object.keys(readEnvFile(options.envFile))), log)
    } catch (err) {
      log.fatal({ err }, 'bad configuration')
      return shell.exit(exitCodes.config)
    }
    const startedAt = new Date().toISOString()
    writeState(watcher.current.server.runDir, svc, watcher.current.version, startedAt)
    watcher.on('change', ({ next, changed }) => {
      const typed = next.app
      log.level = next.server.logLevel
      const logs = loadLogConfig(next.env)
      output.setLimits?.(logs.maxBytes, logs.keep)
      runtimeConfig.apply(next.version, next.env, typed, changed)
      const how = service.reconfigure?.(next.env) ?? 'live'
      if (how === 'restart') {
        log.info({ changed, version: next.version }, 'config change needs a new process: stopping so that the supervisor starts it again')
        stop('SIGTERM')
      } else {
        writeState(next.server.runDir, svc, next.version, startedAt)
        log.info({ version: next.version, changed }, 'config applied')
      }
    })
    watcher.start()
    runtimeConfig.apply(watcher.current.version, watcher.current.env, watcher.current.app, [])
  }
}
