/**
 * Entry point of a worker process (cluster.setupPrimary exec). Boot order: logger, watchdog
 * thread, heartbeats, import the app, await its start(), listen on every bind, report ready.
 * Any boot failure is reported to the arbiter with the error, then the process exits 3.
 */
import { serialiseBindings } from '../log/schema.js'
import cluster from 'node:cluster'
import { Worker as Thread } from 'node:worker_threads'
import type { ServerConfig } from '../config/schema.js'
import { ForkyardError, codes, exitCodes, serializeError } from '../errors.js'
import { ProcessShell } from '../process/shell.js'
import { LOG_FD, installSettings, workerEnv, type ArbiterMessage, type WorkerMessage } from '../arbiter/ipc.js'
import { ReadinessCheck } from './readiness.js'
import { HttpWorker } from './http-worker.js'
import { config as runtimeConfig } from '../config/runtime.js'
import { InflightTable } from './inflight.js'
import { loadApp } from './load-app.js'
import { awaitTakeover, heldSockets } from '../arbiter/handover.js'

let config = JSON.parse(process.env[workerEnv.config] ?? '{}') as ServerConfig
const installed = installSettings(process.env)
runtimeConfig.apply(installed.version, installed.settings, installed.app, [])
const appPath = process.env[workerEnv.app] ?? ''
const workerId = Number(process.env[workerEnv.id] ?? 0)
const generation = Number(process.env[workerEnv.generation] ?? 0)
// Node's cluster worker calls process.exit(0) the moment the IPC channel to its primary closes,
// unless the disconnect was asked for (lib/internal/cluster/child.js): in-flight requests would be
// cut and nothing could take the socket over. This worker decides itself (the 'disconnect' handler).
if (cluster.worker !== undefined) cluster.worker.exitedAfterDisconnect = true
/** The arbiter that forked this worker (process.ppid changes once it is gone). */
const arbiterPid = process.ppid
// Workers log on their own pipe (LOG_FD); the arbiter relays the lines into the server's one
// output. The app's own prints on stdout and stderr are relayed too, wrapped when not JSON.
const shell = new ProcessShell({ svc: 'server', fd: LOG_FD, level: config.logLevel, base: { role: 'worker', worker: workerId, generation } })
const { log } = shell

function send(m: WorkerMessage): void {
  if (process.connected) process.send?.(m)
}

async function main(): Promise<void> {
  // Heartbeats every fifth of the timeout (at most 1 s): the arbiter kills a worker that misses
  // FORKYARD_TIMEOUT worth of them.
  const intervalMs = Math.max(20, Math.min(1000, Math.floor(config.timeoutMs / 5)))
  let worker: HttpWorker | null = null

  const watchdogUrl = new URL('./watchdog.js', import.meta.url)
  const table = new InflightTable()
  const watchdog = new Thread(watchdogUrl, {
    workerData: { sab: table.sab, intervalMs: Math.min(250, intervalMs), thresholdMs: Math.max(250, Math.min(1000, Math.floor(config.timeoutMs / 4))) },
    stdout: false,
    stderr: false,
  })
  watchdog.unref()
  watchdog.on('error', (err) => log.error({ err }, 'watchdog thread failed'))

  const beat = setInterval(() => {
    table.tick()
    if (worker !== null) send(worker.heartbeat())
    else send({ t: 'hb', served: 0, inflight: 0, rss: process.memoryUsage.rss(), configVersion: runtimeConfig.version, requests: [] })
  }, intervalMs)
  beat.unref()

  let stopping: Promise<void> | null = null
  const stop = (reason: string, closeIdle: boolean): Promise<void> => {
    if (stopping !== null) {
      if (closeIdle) void worker?.drain(reason, true)
      return stopping
    }
    stopping = (async () => {
      const code = worker === null ? 0 : await worker.drain(reason, closeIdle)
      if (worker !== null && loaded?.stop !== undefined) {
        try {
          await loaded.stop()
        } catch (err) {
          log.error({ err }, 'app stop() failed')
        }
      }
      shell.exit(code)
    })()
    return stopping
  }

  // /readyz: one question to the arbiter, which knows every component.
  const readiness = new ReadinessCheck((id) => send({ t: 'status-req', id }))

  process.on('message', (m: unknown) => {
    const msg = m as ArbiterMessage
    if (msg?.t === 'drain') void stop(msg.reason, msg.closeIdle)
    else if (msg?.t === 'config') {
      // Validated by the arbiter already: apply, then tell the app.
      config = msg.server
      worker?.updateConfig(msg.server)
      log.level = msg.server.logLevel
      runtimeConfig.apply(msg.version, msg.env, msg.app, msg.changed)
      log.info({ version: msg.version, changed: msg.changed }, 'config applied')
    } else if (msg?.t === 'readiness') {
      readiness.answer(msg.id, msg.readiness)
    }
  })
  // The arbiter is gone (killed -9?). On a Unix socket, keep serving until the next arbiter has
  // taken the socket over (arbiter/handover.ts), then drain; never longer than the deadline.
  process.on('disconnect', () => {
    if (stopping !== null) return
    const held = worker === null ? [] : heldSockets(config.bind, arbiterPid)
    if (held.length === 0 || held.length !== config.bind.length) return void stop('arbiter disconnected', true)
    log.warn({ sockets: held.map((h) => h.path) }, 'arbiter disconnected: serving until a new arbiter takes the socket over')
    awaitTakeover(held, {
      deadlineMs: config.bootTimeoutMs + 10_000,
      settleMs: 500,
      onTakenOver: () => void stop('a new arbiter took the socket over', false),
      onDeadline: () => void stop('no new arbiter took the socket over', true),
    })
  })
  shell.handleSignals({
    // SIGTERM sent to this worker alone: graceful stop (drain, close idle connections, exit).
    SIGTERM: () => void stop('SIGTERM', true),
    // SIGINT comes from a terminal's Ctrl-C to the whole process group: the arbiter coordinates the stop.
    SIGINT: null,
  })
  shell.onFatalError('uncaught exception in app code: draining and exiting', () => {
    void stop('uncaught exception', true)
    setTimeout(() => shell.exit(exitCodes.failure), Math.min(5000, config.gracefulTimeoutMs)).unref()
  })

  let loaded: Awaited<ReturnType<typeof loadApp>> | null = null
  try {
    loaded = await loadApp(appPath)
    if (loaded.start !== undefined) {
      try {
        await loaded.start()
      } catch (err) {
        throw new ForkyardError(codes.APP_START, `The app's start() hook failed: ${(err as Error)?.message ?? String(err)}`, { cause: err })
      }
    }
    const bindings = serialiseBindings({ svc: 'server', pid: process.pid, role: 'worker', worker: workerId, generation })
    worker = new HttpWorker(config, loaded, log, send, table, readiness, { output: shell.output, bindings })
    await worker.listen()
  } catch (err) {
    log.error({ err }, 'worker failed to boot')
    send({ t: 'boot-error', error: serializeError(err) })
    // Let the IPC message leave before exiting.
    setTimeout(() => shell.exit(exitCodes.boot), 50)
    return
  }
  log.debug({ pid: process.pid }, 'worker ready')
  send({ t: 'ready' })
}

void main()
