/**
 * Connections to the Redis engine (FORKYARD_ENGINE=redis://… or redis+sentinel://…), made with
 * ioredis: reconnects by itself with backoff, follows a Sentinel failover, and queues commands
 * while disconnected (each caller bounds its own wait). One place decides how every process of the
 * kit connects, names its connection (CLIENT LIST shows forkyard:<role>:<host>:<pid>) and logs
 * connection changes.
 */
import { hostname } from 'node:os'
import { Redis, type RedisOptions } from 'ioredis'
import type { Logger } from 'pino'
import type { EngineConfig } from '../config/engine.js'
import { ForkyardError, codes } from '../errors.js'

export interface RedisConnectOptions {
  /** What this connection is for (bridge, bridge-sub, tasks, singletons…): in CLIENT LIST and logs. */
  role: string
  log: Logger
  /** BullMQ's workers need maxRetriesPerRequest null (they block); default 2 (a command fails instead of waiting forever). */
  maxRetriesPerRequest?: number | null
}

/** Reconnect after 100 ms, doubling to at most 2 s: a restarted Redis is found again within 2 s. */
export function retryDelay(attempt: number): number {
  return Math.min(2000, 100 * 2 ** Math.min(attempt, 5))
}

export function redisOptions(engine: Readonly<EngineConfig>, options: Omit<RedisConnectOptions, 'log'>): RedisOptions {
  if (engine.kind !== 'redis') throw new ForkyardError(codes.CONFIG, `Expected FORKYARD_ENGINE to name a Redis server, got ${JSON.stringify(engine.shown || 'embedded')}`)
  const common: RedisOptions = {
    connectionName: `forkyard:${options.role}:${hostname()}:${process.pid}`.replace(/[^A-Za-z0-9_:.-]/g, '_'),
    retryStrategy: retryDelay,
    maxRetriesPerRequest: options.maxRetriesPerRequest === undefined ? 2 : options.maxRetriesPerRequest,
    connectTimeout: 2000,
    enableReadyCheck: true,
    lazyConnect: false,
  }
  if (engine.sentinel !== null) {
    const s = engine.sentinel
    return {
      ...common,
      sentinels: s.sentinels,
      name: s.name,
      db: s.db,
      ...(s.password !== '' ? { password: s.password, sentinelPassword: s.password } : {}),
      sentinelRetryStrategy: retryDelay,
      // A master that became a replica (failover) is left for the new one.
      failoverDetector: true,
    }
  }
  const u = new URL(engine.url)
  return {
    ...common,
    host: u.hostname.replace(/^\[|\]$/g, ''),
    port: u.port === '' ? 6379 : Number(u.port),
    db: u.pathname.length > 1 ? Number(u.pathname.slice(1)) : 0,
    ...(u.username !== '' ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password !== '' ? { password: decodeURIComponent(u.password) } : {}),
    ...(u.protocol === 'rediss:' ? { tls: {} } : {}),
  }
}

/** A connection that logs when it is lost and found again (once per change, not per retry). */
export function connectRedis(engine: Readonly<EngineConfig>, options: RedisConnectOptions): Redis {
  const redis = new Redis(redisOptions(engine, options))
  const log = options.log.child({ engine: engine.shown, connection: options.role })
  let up = false
  let lastError = ''
  redis.on('ready', () => {
    up = true
    lastError = ''
    log.info('connected to the Redis engine')
  })
  redis.on('error', (err: Error) => {
    if (err.message === lastError) return
    lastError = err.message
    log.warn({ err: { message: err.message } }, up ? 'Redis engine connection failed' : 'Redis engine not reachable yet: retrying')
  })
  redis.on('close', () => {
    if (!up) return
    up = false
    log.warn('Redis engine connection lost: reconnecting')
  })
  return redis
}
