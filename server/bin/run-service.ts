/**
 * Runs the bridge or the push process in the foreground: root logger, graceful stop on SIGTERM
 * and SIGINT (queued, acted on once), exit 0 when clean.
 */
import type { Logger } from 'pino'
import { loadLogConfig } from '../config/logging.js'
import { createLogger, createOutput, flushAndExit } from '../log/logger.js'

export interface Service {
  close(): Promise<void>
}

export async function runService(svc: string, level: string, start: (log: Logger) => Promise<Service>): Promise<void> {
  const output = createOutput(svc, loadLogConfig(process.env))
  const log = createLogger(output, { svc, level })
  let service: Service
  try {
    service = await start(log)
  } catch (err) {
    log.fatal({ err }, `${svc} failed to start`)
    flushAndExit(output, 1)
  }
  let stopping = false
  const stop = (signal: NodeJS.Signals): void => {
    if (stopping) return
    stopping = true
    log.info({ signal }, 'stopping')
    const force = setTimeout(() => {
      log.error('did not stop within 10 s: exiting')
      flushAndExit(output, 1)
    }, 10_000)
    force.unref()
    service.close().then(
      () => flushAndExit(output, 0),
      (err: unknown) => {
        log.error({ err }, 'stop failed')
        flushAndExit(output, 1)
      },
    )
  }
  process.on('SIGTERM', () => stop('SIGTERM'))
  process.on('SIGINT', () => stop('SIGINT'))
}
