/**
 * The Redis message store (FORKYARD_ENGINE=redis://… or redis+sentinel://…): the bridge of every
 * host keeps its ZeroMQ sockets for its local publishers and push process, and sequences, keeps and
 * fans out through one shared Redis (keys and scripts: redis-scripts.ts).
 * - A publish is one Lua script: dedupe, next offset, stream entry, PUBLISH to every bridge. The
 *   publisher is acknowledged only once the script has returned (Redis has it). Redis unreachable:
 *   no answer (StoreUnavailable); the publisher resends the same seq, which the script dedupes.
 * - Fan-out: one subscriber connection per bridge on <prefix>messages; each payload becomes the
 *   envelope the embedded bridge would have sent, forwarded on the XPUB.
 * - Epochs: never a silent gap. On every (re)connection the bridge verifies the server's run_id
 *   against <prefix>meta (CHECK_LUA): same run, or a restart that cannot have lost an
 *   acknowledged write (appendonly yes + appendfsync always, same server), keeps the epoch;
 *   anything else starts a new one, which the push processes turn into resets for every
 *   subscriber. The publish script refuses ('stale') to write under meta it was not verified for.
 */
import type { Redis } from 'ioredis'
import type { Logger } from 'pino'
import type { EngineConfig } from '../config/engine.js'
import type { BridgeConfig } from '../config/messaging.js'
import { connectRedis } from '../engine/redis.js'
import type { Range } from './history.js'
import { StoreUnavailable, type MessageStore, type PublishIn, type StoreAccepted, type StoreStats } from './message-store.js'
import { CHECK_LUA, PUBLISH_LUA, RANGE_LUA, entriesOf, rangeOf, redisKeys, type HistEntry } from './redis-scripts.js'
import { newEpoch } from './store.js'
import { decodePayload, envelopeOf, isReserved } from './wire.js'

type Arg = string | number
interface Scripted {
  fyCheck: (...args: Arg[]) => Promise<string>
  fyPublish: (...args: Arg[]) => Promise<[string, number?]>
  fyRange: (...args: Arg[]) => Promise<[string, number?, unknown?]>
}

/** Channels whose last forwarded offset is remembered for the catch-up after a resubscribe. */
const TRACKED_CHANNELS = 10_000
/** Verifications (check script) per publish before it is left to the publisher's resend. */
const STALE_RETRIES = 3

export class RedisStore implements MessageStore {
  private readonly cmd: Redis & Scripted
  private readonly sub: Redis
  private readonly keys
  private current = ''
  /** run_id of the server the epoch was verified against ('' = not yet). */
  private runid = ''
  /** Address of the server of the last verification (a different one is a failover). */
  private address = ''
  private verifying: Promise<string> | null = null
  private limits: { count: number; ageMs: number }
  /** Last offset forwarded per channel in the current epoch (insertion order = least recent first). */
  private readonly forwarded = new Map<string, number>()
  /** A SUBSCRIBE on the subscriber connection has been answered (it may have been lost since). */
  private subscribedOnce = false
  private closed = false
  readonly counters = { verifications: 0, epochChanges: 0, stale: 0, badPayloads: 0, catchUps: 0, caughtUp: 0 }

  constructor(
    private readonly engine: Readonly<EngineConfig>,
    config: Readonly<BridgeConfig>,
    private readonly log: Logger,
    private readonly forward: (channel: string, envelope: string) => void,
  ) {
    this.keys = redisKeys(engine.prefix)
    this.limits = { count: config.historyCount, ageMs: config.historyAgeMs }
    this.cmd = connectRedis(engine, { role: 'bridge', log }) as Redis & Scripted
    this.cmd.defineCommand('fyCheck', { numberOfKeys: 1, lua: CHECK_LUA })
    this.cmd.defineCommand('fyPublish', { numberOfKeys: 4, lua: PUBLISH_LUA })
    this.cmd.defineCommand('fyRange', { numberOfKeys: 1, lua: RANGE_LUA })
    this.sub = connectRedis(engine, { role: 'bridge-sub', log })
  }

  get epoch(): string {
    return this.current
  }

  async open(): Promise<void> {
    this.cmd.on('ready', () => void this.verify().catch(() => undefined))
    this.sub.on('message', (_ch: string, text: string) => this.onPayload(text))
    this.sub.on('ready', () => void this.onSubscriberReady())
    // The bridge listens even when Redis is not reachable yet: publishes wait for it (unanswered).
    const deadline = Date.now() + 10_000
    for (let attempt = 0; this.runid === '' && Date.now() < deadline && attempt < 100; attempt++) {
      try {
        await this.verify()
      } catch {
        await new Promise((r) => setTimeout(r, 250))
      }
    }
    if (this.runid === '') this.log.error({ engine: this.engine.shown }, 'Redis engine not reachable: the bridge answers no publish until it is')
    await this.subscribe(deadline)
  }

  /**
   * SUBSCRIBE until Redis answers it: a first attempt can fail (the subscriber connection not up
   * yet, its retries spent), and a bridge that is not subscribed forwards nothing at all. Bounded
   * by `until`; past it the subscriber's next 'ready' tries again.
   */
  private async subscribe(until: number): Promise<void> {
    for (let attempt = 0; !this.closed && attempt < 1000; attempt++) {
      try {
        await this.sub.subscribe(this.keys.messages)
        this.subscribedOnce = true
        return
      } catch (err) {
        if (Date.now() >= until) {
          this.log.error({ err: { message: (err as Error).message } }, 'Redis engine: cannot subscribe to the message channel yet; trying again when the connection is back')
          return
        }
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  }

  /** Learns the server's run_id and whether it persists every write, then runs the check script. */
  private verify(): Promise<string> {
    this.verifying ??= (async () => {
      try {
        const info = await this.cmd.info('server')
        const runid = /^run_id:(\S+)/m.exec(info)?.[1] ?? ''
        if (runid === '') throw new Error(`Expected run_id in INFO server, got ${JSON.stringify(info.slice(0, 120))}`)
        const address = `${this.cmd.stream?.remoteAddress ?? ''}:${this.cmd.stream?.remotePort ?? ''}`
        const durable = await this.persistsEveryWrite()
        // Behind Sentinel a different address is another server (a failover): its replica may lack
        // the last acknowledged writes. A single URL always names the same server.
        const sameServer = this.engine.sentinel === null || (this.address !== '' && this.address === address)
        const keep = durable && sameServer ? '1' : '0'
        const ageTtl = Math.max(this.limits.ageMs, 60_000)
        const epoch = await this.cmd.fyCheck(this.keys.meta, runid, newEpoch(), keep, this.engine.prefix, ageTtl)
        this.counters.verifications++
        if (epoch !== this.current) {
          if (this.current !== '') {
            this.counters.epochChanges++
            this.log.warn({ from: this.current, to: epoch, durable, sameServer }, 'Redis engine epoch changed: history lost, subscribers are told')
          } else this.log.info({ epoch, durable }, 'Redis engine epoch')
          this.forwarded.clear()
        }
        this.current = epoch
        this.runid = runid
        this.address = address
        return epoch
      } finally {
        this.verifying = null
      }
    })()
    return this.verifying
  }

  /** appendonly yes and appendfsync always: an acknowledged write survives kill -9. CONFIG refused: no. */
  private async persistsEveryWrite(): Promise<boolean> {
    try {
      const [aof, fsync, policy] = await Promise.all(['appendonly', 'appendfsync', 'maxmemory-policy'].map((k) => this.cmd.config('GET', k) as Promise<string[]>))
      const p = policy?.[1] ?? ''
      if (p !== '' && p !== 'noeviction') this.log.error({ maxmemoryPolicy: p }, 'Redis evicts keys under memory pressure (maxmemory-policy): history and dedupe entries may vanish; set maxmemory-policy noeviction')
      return aof?.[1] === 'yes' && fsync?.[1] === 'always'
    } catch {
      return false
    }
  }

  async accept(m: PublishIn): Promise<StoreAccepted> {
    for (let attempt = 0; attempt <= STALE_RETRIES; attempt++) {
      let reply: [string, number?]
      try {
        if (this.runid === '') await this.verify()
        const epoch = this.current
        const count = isReserved(m.channel) ? 1 : this.limits.count
        reply = await this.cmd.fyPublish(
          this.keys.meta, this.keys.idem(epoch, m), this.keys.offsets(epoch), this.keys.hist(epoch, m.channel),
          this.runid, epoch, m.channel, m.now, m.reqId, m.data, count, this.limits.ageMs, Math.ceil(Math.max(60_000, this.limits.ageMs) / 1000), this.keys.messages,
        )
        if (reply[0] !== 'stale') return { offset: Number(reply[1]), epoch, duplicate: reply[0] === 'dup', envelope: null }
      } catch (err) {
        throw new StoreUnavailable(`Redis engine: ${(err as Error).message}`)
      }
      this.counters.stale++
      this.runid = ''
    }
    throw new StoreUnavailable(`Redis engine: meta changed ${STALE_RETRIES + 1} times in a row`)
  }

  async range(channel: string, after: number, asked: string | null, now: number): Promise<Range> {
    for (let attempt = 0; attempt < 2; attempt++) {
      const [epoch, last, raw] = await this.cmd.fyRange(this.keys.meta, this.engine.prefix, channel, after)
      if (epoch === '') {
        // No meta: the server came back empty and no bridge verified it yet.
        await this.verify()
        continue
      }
      return rangeOf(epoch, Number(last), entriesOf(raw), after, asked, now, this.limits.ageMs, (e) => envelopeOf(channel, e.offset, epoch, e.ts, e.data, e.reqId))
    }
    throw new StoreUnavailable('Redis engine: no epoch after verification')
  }

  private onPayload(text: string): void {
    const p = decodePayload(text)
    if (p instanceof Error) {
      this.counters.badPayloads++
      this.log.error({ err: { message: p.message } }, 'unreadable message on the Redis engine channel: dropped (push fills the gap from history)')
      return
    }
    // Another bridge verified a new epoch first: learn it (push resets on the envelope itself).
    if (p.epoch !== this.current) void this.verify().catch(() => undefined)
    this.track(p.channel, p.offset)
    this.forward(p.channel, envelopeOf(p.channel, p.offset, p.epoch, p.ts, p.data, p.reqId))
  }

  private track(channel: string, offset: number): void {
    const had = this.forwarded.get(channel)
    if (had !== undefined && had >= offset) return
    this.forwarded.delete(channel)
    this.forwarded.set(channel, offset)
    if (this.forwarded.size > TRACKED_CHANNELS) this.forwarded.delete(this.forwarded.keys().next().value!)
  }

  /**
   * The subscriber connection is back: messages published while it was away were missed. For
   * every channel this bridge forwarded before, what Redis holds past it is forwarded now (push
   * drops duplicates by offset). Not covered: channels this bridge never forwarded, or forgot
   * (past TRACKED_CHANNELS), and messages already trimmed from the stream: push sees the offset
   * jump at the channel's next message and fills it from history or tells its subscribers.
   */
  private async onSubscriberReady(): Promise<void> {
    // Never subscribed yet (the first SUBSCRIBE failed or is still queued): nothing was forwarded,
    // so nothing to catch up; subscribing is what is missing.
    if (!this.subscribedOnce) return this.subscribe(Date.now() + 10_000)
    try {
      // The reply proves the subscription is active again: nothing after this read is missed.
      await this.sub.subscribe(this.keys.messages)
      const epoch = this.current
      const channels = [...this.forwarded.keys()]
      this.counters.catchUps++
      for (let i = 0; i < channels.length && !this.closed; i += 500) {
        const batch = channels.slice(i, i + 500)
        const lasts = await this.cmd.hmget(this.keys.offsets(epoch), ...batch)
        for (const [k, ch] of batch.entries()) {
          const last = Number(lasts[k] ?? 0)
          const had = this.forwarded.get(ch) ?? 0
          if (last <= had || epoch !== this.current) continue
          const entries: HistEntry[] = entriesOf(await this.cmd.xrange(this.keys.hist(epoch, ch), `${had + 1}-0`, '+'))
          for (const e of entries) {
            // A new epoch meanwhile: its envelopes are flowing; old ones would reset push again.
            if (epoch !== this.current) break
            if (e.offset <= (this.forwarded.get(ch) ?? 0)) continue
            this.track(ch, e.offset)
            this.counters.caughtUp++
            this.forward(ch, envelopeOf(ch, e.offset, epoch, e.ts, e.data, e.reqId))
          }
        }
      }
    } catch (err) {
      this.log.warn({ err: { message: (err as Error).message } }, 'catch-up after the Redis subscriber reconnected failed: push fills gaps from history at the next message')
    }
  }

  setLimits(limits: { count: number; ageMs: number }): void {
    this.limits = limits
  }

  tick(): void {
    // Redis trims (MAXLEN) and expires (PEXPIRE) by itself.
  }

  stats(): StoreStats {
    return { channels: this.forwarded.size, kept: 0, engine: 'redis', ...this.counters }
  }

  close(): Promise<void> {
    // Nothing to flush (a publish is acknowledged only once Redis has it); quit() would wait for
    // an unreachable server.
    this.closed = true
    this.sub.disconnect()
    this.cmd.disconnect()
    return Promise.resolve()
  }
}
