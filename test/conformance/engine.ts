/**
 * What the bridge + push conformance suite (suite.ts) needs from a messaging engine, and the
 * embedded engine's implementation. The interface speaks only of the contract the README
 * documents: a WebSocket URL, publisher processes and their acknowledgements, restarts of the
 * message store and of the push process, tokens. Nothing in it is ZeroMQ-specific, so a second
 * engine (Redis, issue 14: redisEngine) implements the same interface and runs the same suite.
 */
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { signPushToken } from '../../server/push/tokens.js'
import { startProc, type Proc } from '../helpers/proc.js'
import { pushReady, startStack, type Stack } from '../helpers/push.js'
import { startRedis, type RedisServer } from '../helpers/redis.js'
import { root } from '../helpers/server.js'

export interface EngineOptions {
  /** Messages kept per channel (FORKYARD_BRIDGE_HISTORY_COUNT); the engine's default when absent. */
  historyCount?: number
}

/** One acknowledged (or refused) publish, as seen by the publishing process. */
export interface Ack {
  /** The publisher's message number, 0-based. */
  i: number
  offset: number
  epoch: string
}

export interface Refusal {
  i: number
  code: string
  error: string
}

/** A publisher running in its own process. `acks` and `refusals` fill in as it goes. */
export interface PublisherRun {
  acks: Ack[]
  refusals: Refusal[]
  /** Resolves when the process has had an answer for every message. */
  done: Promise<{ acked: number; failed: number }>
}

export interface PublishSpec {
  channel: string
  /** Publisher name, carried in each message's data as `from`. */
  name?: string
  count: number
  /** Pause between publishes; 0 = as fast as possible. */
  intervalMs?: number
  /** Message i is published with the idempotency key `<idempotencyKey>-<i>`. */
  idempotencyKey?: string
}

export interface MessagingEngine {
  readonly name: string
  /** Starts the message store and the push process; resolves once the push process is ready. */
  start: (options?: EngineOptions) => Promise<{ url: string; env: Record<string, string> }>
  /** The browser-facing WebSocket URL (valid after start). */
  readonly url: string
  /** Environment under which a process's publish() reaches this engine (valid after start). */
  readonly env: Record<string, string>
  /** Starts a publisher process: data {from: name, i} for i in 0..count-1. */
  publisher: (spec: PublishSpec) => PublisherRun
  /**
   * Sends one message twice with the same (publisher id, sequence); returns both acknowledgements.
   * `between` runs after the first is acknowledged and before the second is sent.
   */
  publishDuplicate: (channel: string, name: string, between?: () => Promise<void>) => Promise<[Ack, Ack]>
  /** kill -9 of the message store, then started again with its history or having lost it. */
  restartStore: (options: { keepHistory: boolean }) => Promise<void>
  /** kill -9 of the push process, then started again on the same URL. */
  restartPush: () => Promise<void>
  /** A token for private channels, valid for ttlSeconds. */
  signToken: (channels: string[], ttlSeconds: number) => string
  stop: () => Promise<void>
}

export type EngineFactory = (t: TestContext) => MessagingEngine

export const publisherScript = join(root, 'test/fixtures/publisher.mjs')
const duplicateScript = join(root, 'test/fixtures/duplicate-publisher.mjs')
const secret = 'test-secret-test-secret-test-secret!'

export function watchPublisher(p: Proc): PublisherRun {
  const acks: Ack[] = []
  const refusals: Refusal[] = []
  const done = (async () => {
    const line = await p.waitLog((l) => l.done === true, 'publisher done', 60_000)
    for (const l of p.logs) {
      if (l.msg === 'ack') acks.push({ i: Number(l.i), offset: Number(l.offset), epoch: String(l.epoch) })
      else if (l.msg === 'publish failed') refusals.push({ i: Number(l.i), code: String(l.code), error: String(l.error) })
    }
    return { acked: Number(line.acked), failed: Number(line.failed) }
  })()
  done.catch(() => undefined)
  return { acks, refusals, done }
}

/** How an engine runs its message store under the same bridge and push processes. */
interface StoreHooks {
  /** Environment of the bridge process (the store's settings). */
  bridgeEnv: (options: EngineOptions) => Promise<Record<string, string>>
  /** kill -9 of the store, started again with or without its history; the bridge is left running when it is not the store. */
  restart: (stack: Stack, keepHistory: boolean) => Promise<void>
}

function stackEngine(t: TestContext, name: string, hooks: StoreHooks): MessagingEngine {
  let stack: Stack | null = null
  const need = (): Stack => {
    if (stack === null) throw new Error('engine not started')
    return stack
  }
  const ready = async (): Promise<void> => {
    const s = need()
    await pushReady(s)
  }
  return {
    name,
    get url() {
      return need().url
    },
    get env() {
      return need().env
    },
    start: async (options = {}) => {
      const bridge = await hooks.bridgeEnv(options)
      if (options.historyCount !== undefined) bridge.FORKYARD_BRIDGE_HISTORY_COUNT = String(options.historyCount)
      stack = await startStack(t, { bridge, push: { FORKYARD_PUSH_HEARTBEAT_STALE: '1500ms' } })
      return { url: stack.url, env: stack.env }
    },
    publisher: (spec) => {
      const env = { ...need().env, NAME: spec.name ?? 'p', CHANNEL: spec.channel, COUNT: String(spec.count), INTERVAL_MS: String(spec.intervalMs ?? 0), ACKS: '1', IDEMPOTENCY_KEY: spec.idempotencyKey ?? '' }
      return watchPublisher(startProc(t, [], env, { script: publisherScript }))
    },
    publishDuplicate: async (channel, name, between) => {
      const gate = join(need().dir, `gate-${Date.now()}-${Math.random().toString(36).slice(2)}`)
      const proc = startProc(t, [], { ...need().env, NAME: name, CHANNEL: channel, GATE: gate }, { script: duplicateScript })
      const run = watchPublisher(proc)
      await proc.waitLog((l) => l.msg === 'ack', 'first acknowledgement', 15_000)
      await between?.()
      writeFileSync(gate, '')
      await run.done
      const [a, b] = run.acks
      if (a === undefined || b === undefined) throw new Error(`expected two acknowledgements, got ${JSON.stringify(run)}`)
      return [a, b]
    },
    restartStore: async ({ keepHistory }) => {
      await hooks.restart(need(), keepHistory)
      await ready()
    },
    restartPush: async () => {
      const s = need()
      await s.push.stop('SIGKILL')
      await s.startPush()
      await ready()
    },
    signToken: (channels, ttlSeconds) => signPushToken(secret, { channels, ttlSeconds }),
    stop: async () => {
      if (stack === null) return
      await stack.push.stop()
      await stack.bridge.stop()
      stack = null
    },
  }
}

/** The embedded engine: `forkyard bridge` (ZeroMQ, history file) and `forkyard push`, as processes. */
export function zeromqEngine(t: TestContext): MessagingEngine {
  return stackEngine(t, 'zeromq', {
    bridgeEnv: () => Promise.resolve({ FORKYARD_BRIDGE_DATA_DIR: 'data' }),
    restart: async (s, keepHistory) => {
      await s.bridge.stop('SIGKILL')
      if (!keepHistory) rmSync(join(s.dir, 'data'), { recursive: true, force: true })
      await s.startBridge()
    },
  })
}

/**
 * The Redis engine: a real redis-server (appendonly yes, appendfsync always), `forkyard bridge`
 * with FORKYARD_ENGINE=redis://… and `forkyard push`. The message store is redis-server itself:
 * killed -9 and started again with its append-only file (history kept) or without it (lost).
 */
export function redisEngine(t: TestContext): MessagingEngine {
  let redis: RedisServer | null = null
  return stackEngine(t, 'redis', {
    bridgeEnv: async () => {
      redis = await startRedis(t, { aof: true })
      return { FORKYARD_ENGINE: redis.url }
    },
    restart: async (_s, keepHistory) => {
      if (redis === null) throw new Error('engine not started')
      await redis.kill()
      await redis.start({ aof: keepHistory })
    },
  })
}
