/**
 * Settings of the message bridge, of publishers (app code in workers) and of the push process.
 * `.env.example` documents the same keys.
 */
import { join, resolve } from 'node:path'
import { ForkyardError, codes } from '../errors.js'
import { bool, duration, int, size, text, type Parser } from './parse.js'
import { readSection, type Overrides, type Schema } from './section.js'

export interface BridgeConfig {
  /** Directory of the ipc:// sockets (mode 0700); empty = <FORKYARD_RUN_DIR>/bridge. */
  dir: string
  /** Optional TCP listener "host:port" (publish on port, subscribe on port+1); empty = none. */
  tcp: string
  /** Messages kept per channel for resume. */
  historyCount: number
  /** Age after which history messages are dropped, in ms. */
  historyAgeMs: number
  /** Directory of the append-only history file; empty (FORKYARD_BRIDGE_DATA_DIR=none) = history in memory only. */
  dataDir: string
  /** fdatasync the history file before each acknowledgement (survives a power loss, not only a crash). */
  fsync: boolean
}

export interface PublisherConfig {
  dir: string
  /** Publishes waiting for the bridge; past it publish() rejects. */
  queue: number
  /** Resend an unacknowledged publish after this many ms (the bridge drops duplicates). */
  resendMs: number
}

export interface PushConfig {
  bridgeDir: string
  /** host:port of the WebSocket server (nginx proxies /ws to it). */
  bind: string
  /** HMAC-SHA256 secret for private channel tokens (at least 32 characters); empty = no private channels. */
  secret: string
  /** Allowed Origin values, comma-separated; "*" = any; empty = same host only (and no Origin). */
  origins: string[]
  maxMessageBytes: number
  maxSubscriptions: number
  /** A connection whose unsent data exceeds this is cut as a slow consumer. */
  maxBufferBytes: number
  /** New connections per second per client address (burst: twice as many). */
  connRate: number
  pingIntervalMs: number
  /** Not ready when the last heartbeat through the bridge is older than this. */
  heartbeatStaleMs: number
  /**
   * A client whose messages wait longer than this (in the push process or in its socket's send
   * buffer) is cut with a "reset" naming its last delivered offset, then resumes from there; 0 = never.
   */
  maxLagMs: number
}

const list: Parser<string[]> = (_name, raw) => raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
const any: Parser<string> = (_name, raw) => raw.trim()

/** A directory, or `none` for history in memory only (a restart then starts a new epoch). */
const dataDir: Parser<string> = (_name, raw) => (['none', 'off', 'memory'].includes(raw.trim().toLowerCase()) ? '' : raw.trim())

const tcp: Parser<string> = (name, raw) => {
  const s = raw.trim()
  if (s !== '' && !/^[^:\s]+:\d{1,5}$/.test(s)) {
    throw new ForkyardError(codes.CONFIG, `Expected ${name} to be empty or "host:port", got ${JSON.stringify(raw)}`)
  }
  return s
}

const secret: Parser<string> = (name, raw) => {
  const s = raw.trim()
  if (s !== '' && s.length < 32) {
    throw new ForkyardError(codes.CONFIG, `Expected ${name} to be empty or at least 32 characters, got ${s.length} characters`)
  }
  return s
}

const bridgeSchema: Schema<BridgeConfig> = {
  dir: { env: 'FORKYARD_BRIDGE_DIR', parse: any, default: '', apply: 'restart' },
  tcp: { env: 'FORKYARD_BRIDGE_TCP', parse: tcp, default: '', apply: 'restart' },
  historyCount: { env: 'FORKYARD_BRIDGE_HISTORY_COUNT', parse: int(0, 10_000_000), default: '1000' },
  historyAgeMs: { env: 'FORKYARD_BRIDGE_HISTORY_AGE', parse: duration, default: '1h' },
  dataDir: { env: 'FORKYARD_BRIDGE_DATA_DIR', parse: dataDir, default: './data/bridge', apply: 'restart' },
  fsync: { env: 'FORKYARD_BRIDGE_FSYNC', parse: bool, default: 'false', apply: 'restart' },
}

// A process's publisher is made at its first publish(): new values need new processes.
const publisherSchema: Schema<PublisherConfig> = {
  dir: { env: 'FORKYARD_BRIDGE_DIR', parse: any, default: '', apply: 'restart' },
  queue: { env: 'FORKYARD_PUBLISH_QUEUE', parse: int(1, 10_000_000), default: '10000', apply: 'restart' },
  resendMs: { env: 'FORKYARD_PUBLISH_RESEND', parse: duration, default: '2s', apply: 'restart' },
}

const pushSchema: Schema<PushConfig> = {
  bridgeDir: { env: 'FORKYARD_BRIDGE_DIR', parse: any, default: '', apply: 'restart' },
  bind: { env: 'FORKYARD_PUSH_BIND', parse: text, default: '127.0.0.1:8001', apply: 'restart' },
  secret: { env: 'FORKYARD_PUSH_SECRET', parse: secret, default: '' },
  origins: { env: 'FORKYARD_PUSH_ORIGINS', parse: list, default: '' },
  maxMessageBytes: { env: 'FORKYARD_PUSH_MAX_MESSAGE', parse: size, default: '64KiB' },
  maxSubscriptions: { env: 'FORKYARD_PUSH_MAX_SUBSCRIPTIONS', parse: int(1, 100_000), default: '100' },
  maxBufferBytes: { env: 'FORKYARD_PUSH_MAX_BUFFER', parse: size, default: '1MiB' },
  connRate: { env: 'FORKYARD_PUSH_CONN_RATE', parse: int(1, 1_000_000), default: '20' },
  pingIntervalMs: { env: 'FORKYARD_PUSH_PING_INTERVAL', parse: duration, default: '30s' },
  heartbeatStaleMs: { env: 'FORKYARD_PUSH_HEARTBEAT_STALE', parse: duration, default: '5s' },
  maxLagMs: { env: 'FORKYARD_PUSH_MAX_LAG', parse: duration, default: '5s' },
}

export const messagingSchemas = { bridge: bridgeSchema, publisher: publisherSchema, push: pushSchema }

/** The bridge's socket directory: FORKYARD_BRIDGE_DIR, else <FORKYARD_RUN_DIR or ./run>/bridge. */
function bridgeDir(dir: string, env: NodeJS.ProcessEnv): string {
  return resolve(dir !== '' ? dir : join(env.FORKYARD_RUN_DIR?.trim() || './run', 'bridge'))
}

export function loadBridgeConfig(env: NodeJS.ProcessEnv, overrides: Overrides<BridgeConfig> = {}): Readonly<BridgeConfig> {
  const c = readSection(bridgeSchema, env, overrides)
  c.dir = bridgeDir(c.dir, env)
  if (c.dataDir !== '') c.dataDir = resolve(c.dataDir)
  return Object.freeze(c)
}

export function loadPublisherConfig(env: NodeJS.ProcessEnv, overrides: Overrides<PublisherConfig> = {}): Readonly<PublisherConfig> {
  const c = readSection(publisherSchema, env, overrides)
  c.dir = bridgeDir(c.dir, env)
  return Object.freeze(c)
}

export function loadPushConfig(env: NodeJS.ProcessEnv, overrides: Overrides<PushConfig> = {}): Readonly<PushConfig> {
  const c = readSection(pushSchema, env, overrides)
  c.bridgeDir = bridgeDir(c.bridgeDir, env)
  if (!/^[^:\s]+:\d{1,5}$/.test(c.bind)) {
    throw new ForkyardError(codes.CONFIG, `Expected FORKYARD_PUSH_BIND to be "host:port", got ${JSON.stringify(c.bind)}`)
  }
  return Object.freeze(c)
}
