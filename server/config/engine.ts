/**
 * FORKYARD_ENGINE: what carries messages, tasks and singletons between processes.
 *   embedded (default)  one host: the ZeroMQ bridge with its history file, tasks as files in
 *                       FORKYARD_TASKS_DIR, singletons by a pidfile in the run directory.
 *   redis://…, rediss://…
 *                       several hosts sharing one Redis (Debian's redis-server 7 or any Redis >= 6.2).
 *   redis+sentinel://[:password@]host:port,host:port/<master name>[/<db>]
 *                       the same, through Redis Sentinel: the master is asked of the sentinels and
 *                       followed across failovers.
 * Every process reads it once at start; a change needs new processes (apply: restart).
 */
import { ForkyardError, codes } from '../errors.js'
import { text, type Parser } from './parse.js'
import { readSection, type Overrides, type Schema } from './section.js'

export interface SentinelTarget {
  sentinels: { host: string; port: number }[]
  name: string
  db: number
  password: string
}

export interface EngineConfig {
  kind: 'embedded' | 'redis'
  /** The URL as given ('' when embedded), with any password replaced by *** for logs. */
  shown: string
  /** redis:// or rediss:// URL for a single server ('' when embedded or Sentinel). */
  url: string
  sentinel: SentinelTarget | null
  /** Prefix of every Redis key and pub/sub channel, so several deployments can share one Redis. */
  prefix: string
}

interface RawEngine {
  engine: { kind: 'embedded' | 'redis'; url: string; shown: string; sentinel: SentinelTarget | null }
  prefix: string
}

function hidePassword(url: string): string {
  return url.replace(/^([a-z+]+:\/\/)([^@/]*)@/i, (_m, scheme: string) => `${scheme}***@`)
}

function parseSentinel(name: string, raw: string): SentinelTarget {
  const m = /^redis\+sentinel:\/\/(?:([^@/]*)@)?([^/]+)\/([^/]+)(?:\/(\d+))?\/?$/i.exec(raw)
  if (m === null) throw new ForkyardError(codes.CONFIG, `Expected ${name} as redis+sentinel://[:password@]host:port,host:port/<master name>[/<db>], got ${JSON.stringify(hidePassword(raw))}`)
  const sentinels = m[2]!.split(',').map((hp) => {
    const at = hp.lastIndexOf(':')
    const host = at > 0 ? hp.slice(0, at) : hp
    const port = at > 0 ? Number(hp.slice(at + 1)) : 26379
    if (host === '' || !Number.isInteger(port) || port < 1 || port > 65535) {
      throw new ForkyardError(codes.CONFIG, `Expected ${name}'s sentinels as host:port, got ${JSON.stringify(hp)}`)
    }
    return { host, port }
  })
  const auth = m[1] ?? ''
  return { sentinels, name: decodeURIComponent(m[3]!), db: Number(m[4] ?? '0'), password: decodeURIComponent(auth.startsWith(':') ? auth.slice(1) : auth) }
}

const engine: Parser<RawEngine['engine']> = (name, raw) => {
  const s = raw.trim()
  if (s === '' || s.toLowerCase() === 'embedded') return { kind: 'embedded', url: '', shown: '', sentinel: null }
  if (/^redis\+sentinel:\/\//i.test(s)) return { kind: 'redis', url: '', shown: hidePassword(s), sentinel: parseSentinel(name, s) }
  if (/^rediss?:\/\/[^/\s]+/i.test(s)) {
    try {
      new URL(s)
    } catch {
      throw new ForkyardError(codes.CONFIG, `Expected ${name} to be a valid redis:// URL, got ${JSON.stringify(hidePassword(s))}`)
    }
    return { kind: 'redis', url: s, shown: hidePassword(s), sentinel: null }
  }
  throw new ForkyardError(codes.CONFIG, `Expected ${name} to be embedded, redis://host:port[/db], rediss://… or redis+sentinel://host:port,…/<master>, got ${JSON.stringify(hidePassword(s))}`)
}

const prefix: Parser<string> = (name, raw) => {
  const s = text(name, raw)
  if (!/^[A-Za-z0-9_:.-]{1,64}$/.test(s)) throw new ForkyardError(codes.CONFIG, `Expected ${name} to be 1-64 characters from A-Z a-z 0-9 _ : . -, got ${JSON.stringify(raw)}`)
  return s
}

const engineSchema: Schema<RawEngine> = {
  engine: { env: 'FORKYARD_ENGINE', parse: engine, default: 'embedded', apply: 'restart' },
  prefix: { env: 'FORKYARD_ENGINE_PREFIX', parse: prefix, default: 'forkyard:', apply: 'restart' },
}

export const engineSchemas = { engine: engineSchema }

export function loadEngineConfig(env: NodeJS.ProcessEnv, overrides: Overrides<RawEngine> = {}): Readonly<EngineConfig> {
  const c = readSection(engineSchema, env, overrides)
  return Object.freeze({ ...c.engine, prefix: c.prefix })
}
