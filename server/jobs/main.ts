/**
 * Entry point of the jobs process, started and supervised by the arbiter (one per deployment):
 * imports the app module so that its tasks.define() and singleton() declarations exist, then runs
 * queued tasks and the singletons. Reports its singletons, task counts and settings version to the
 * arbiter every second (for /readyz).
 */
import { pathToFileURL } from 'node:url'
import type { ServerConfig } from '../config/schema.js'
import { exitCodes } from '../errors.js'
import { ProcessShell } from '../process/shell.js'
import { LOG_FD, installSettings, workerEnv, type ArbiterMessage, type JobsMessage } from '../arbiter/ipc.js'
import { loadEngineConfig } from '../config/engine.js'
import { config as runtimeConfig } from '../config/runtime.js'
import { connectRedis } from '../engine/redis.js'
import type { TaskEngine } from './backend.js'
import { PidfileLeases, RedisLeases, type Leases } from './leases.js'
import { TaskQueue } from './queue.js'
import { RedisTaskRunner } from './redis-runner.js'
import { TaskRunner } from './runner.js'
import { Singletons } from './singletons.js'
import { singletonDefinitions, taskDefinitions } from './registry.js'

const config = JSON.parse(process.env[workerEnv.config] ?? '{}') as ServerConfig
// Logs on its own pipe (LOG_FD); the arbiter relays the lines into the server's one output.
const shell = new ProcessShell({ svc: 'server', fd: LOG_FD, level: config.logLevel, base: { role: 'jobs' } })
const { log } = shell
shell.onFatalError('uncaught exception in the jobs process: exiting (the arbiter restarts it; running tasks run again)')
const installed = installSettings(process.env)
runtimeConfig.apply(installed.version, installed.settings, installed.app, [])

let runner: TaskEngine | null = null

// A .env change the arbiter validated: config.get() in tasks and singletons sees it at once.
process.on('message', (m: unknown) => {
  const msg = m as ArbiterMessage
  if (msg?.t !== 'config') return
  log.level = msg.server.logLevel
  if (runner !== null) runner.retention = { maxAgeMs: msg.server.tasksKeepAgeMs, maxCount: msg.server.tasksKeepCount }
  runtimeConfig.apply(msg.version, msg.env, msg.app, msg.changed)
  log.info({ version: msg.version, changed: msg.changed }, 'config applied')
})

async function main(): Promise<void> {
  try {
    await import(pathToFileURL(process.env[workerEnv.app] ?? '').href)
  } catch (err) {
    log.error({ err }, 'jobs process failed to import the app module')
    setTimeout(() => shell.exit(exitCodes.boot), 50)
    return
  }
  // The engine, from the settings this process was given (read once): tasks and singletons on
  // files and pidfiles, or in Redis. A Redis that is down at start is waited for (ioredis
  // reconnects; readiness says so), never a crash loop.
  const engine = loadEngineConfig(runtimeConfig.settings())
  const retention = { maxAgeMs: config.tasksKeepAgeMs, maxCount: config.tasksKeepCount }
  let tasksRunner: TaskEngine
  let leases: Leases
  let redisRunner: RedisTaskRunner | null = null
  if (engine.kind === 'redis') {
    redisRunner = new RedisTaskRunner(engine, log, { concurrency: config.tasksConcurrency, leaseMs: config.tasksLeaseMs, retention })
    tasksRunner = redisRunner
    leases = new RedisLeases(connectRedis(engine, { role: 'singletons', log }), engine.prefix, config.singletonLeaseMs)
  } else {
    tasksRunner = new TaskRunner(new TaskQueue(config.tasksDir), log, config.tasksConcurrency, retention)
    leases = new PidfileLeases(config.runDir)
  }
  runner = tasksRunner
  const singletons = new Singletons(leases, log)
  tasksRunner.start()
  singletons.start()
  log.info({ tasks: [...taskDefinitions.keys()], singletons: [...singletonDefinitions.keys()], engine: engine.shown || 'embedded', ...(engine.kind === 'embedded' ? { tasksDir: config.tasksDir } : { tasksLeaseMs: config.tasksLeaseMs, singletonLeaseMs: config.singletonLeaseMs }) }, 'jobs process ready')
  // Every second, to the arbiter: /readyz shows the singletons and the version this process runs.
  const report = (): void => {
    const engineState = redisRunner === null ? { kind: 'embedded', ok: true } : { kind: 'redis', ok: redisRunner.engineUp, ...(redisRunner.engineUp ? {} : { error: redisRunner.engineError }) }
    const msg: JobsMessage = { t: 'jobs', report: { version: runtimeConfig.version, singletons: Object.fromEntries(singletons.states), tasks: tasksRunner.counts(), engine: engineState, metrics: tasksRunner.metrics() } }
    if (process.connected) process.send?.(msg)
  }
  report()
  const statusTimer = setInterval(report, 1000)
  let stopping = false
  const stop = async (why: string): Promise<void> => {
    if (stopping) return
    stopping = true
    log.info({ why }, 'jobs process stopping')
    clearInterval(statusTimer)
    await Promise.all([tasksRunner.stop(config.gracefulTimeoutMs), singletons.stop()])
    report()
    shell.exit(exitCodes.ok)
  }
  shell.handleSignals({
    // SIGTERM (from the arbiter): running tasks finish (within the graceful timeout), singletons stop, exit.
    SIGTERM: () => void stop('SIGTERM'),
    // SIGINT: a terminal's Ctrl-C reaches the whole process group; the arbiter coordinates the stop.
    SIGINT: null,
  })
  // Dying with the parent: the IPC channel to the arbiter closes at once when it is gone.
  process.on('disconnect', () => void stop('arbiter disconnected'))
  process.send?.({ t: 'ready' })
}

void main()
