/**
 * The message bridge process: sequences, stores and fans out what app code publishes.
 *   in  (ROUTER): acknowledged, idempotent publish; history and stats requests.
 *   out (XPUB):   every accepted message as [channel, envelope].
 * The frames are documented in wire.ts.
 * Plain XSUB/XPUB forwarding cannot acknowledge, number or replay, so the publish side is a
 * ROUTER; the fan-out side stays XPUB. Sockets are ipc:// files in a directory only this user can
 * enter (TCP only when FORKYARD_BRIDGE_TCP is set).
 */
import { chmodSync, mkdirSync } from 'node:fs'
import type { Logger } from 'pino'
import { Router, XPublisher } from 'zeromq'
import type { EngineConfig } from '../config/engine.js'
import type { BridgeConfig } from '../config/messaging.js'
import { EmbeddedStore } from './embedded-store.js'
import type { Range } from './history.js'
import { StoreRefusal, StoreUnavailable, type MessageStore, type StoreAccepted } from './message-store.js'
import { RedisStore } from './redis-store.js'
import { CHANNEL, REQUEST_ID, SendQueue, bridgeEndpoints, yieldToLoop } from './wire.js'

/**
 * Publishes waiting for the Redis store at once; past it a publish gets no answer (the publisher
 * resends it, deduplicated), so an unreachable Redis cannot grow the bridge's memory without bound.
 */
const MAX_IN_FLIGHT = 20_000

export interface BridgeCounters {
  received: number
  accepted: number
  forwarded: number
  deduplicated: number
  dropped: { invalidChannel: number; invalidData: number; invalidKey: number; malformed: number; persistFailed: number; storeUnavailable: number; storeBusy: number }
  historyRequests: number
  historyFailed: number
}

export class Bridge {
  readonly counters: BridgeCounters = {
    received: 0,
    accepted: 0,
    forwarded: 0,
    deduplicated: 0,
    dropped: { invalidChannel: 0, invalidData: 0, invalidKey: 0, malformed: 0, persistFailed: 0, storeUnavailable: 0, storeBusy: 0 },
    historyRequests: 0,
    historyFailed: 0,
  }
  private readonly router = new Router({ sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 })
  // Subscribers that fall more than this behind lose messages at the XPUB (ZeroMQ drops silently
  // past the high-water mark); the push process sees the offset jump and fills it from history.
  private readonly xpub = new XPublisher({ sendHighWaterMark: 100_000 })
  private readonly routerOut = new SendQueue(this.router)
  private readonly xpubOut = new SendQueue(this.xpub)
  private readonly store: MessageStore
  private inFlight = 0
  private lastUnavailableLog = 0
  private trimTimer: NodeJS.Timeout | null = null
  private closing: Promise<void> | null = null
  private loop: Promise<void> | null = null

  constructor(
    private config: Readonly<BridgeConfig>,
    private readonly log: Logger,
    private readonly engine: Readonly<EngineConfig> | null = null,
  ) {
    this.store =
      engine?.kind === 'redis'
        ? new RedisStore(engine, config, log, (channel, envelope) => this.forward(channel, envelope))
        : new EmbeddedStore(config, log)
  }

  get epoch(): string {
    return this.store.epoch
  }

  async start(): Promise<void> {
    mkdirSync(this.config.dir, { recursive: true, mode: 0o700 })
    chmodSync(this.config.dir, 0o700)
    const limits = { count: this.config.historyCount, ageMs: this.config.historyAgeMs }
    await this.store.open()
    const ep = bridgeEndpoints(this.config.dir)
    await this.router.bind(ep.in)
    await this.xpub.bind(ep.out)
    if (this.config.tcp !== '') {
      const [host, port] = this.config.tcp.split(':')
      await this.router.bind(`tcp://${host}:${port}`)
      await this.xpub.bind(`tcp://${host}:${Number(port) + 1}`)
    }
    this.trimTimer = setInterval(() => this.store.tick(Date.now()), 5000)
    this.loop = this.receive()
    this.log.info({ in: ep.in, out: ep.out, tcp: this.config.tcp || undefined, historyCount: limits.count, historyAgeMs: limits.ageMs, engine: this.engine?.kind === 'redis' ? this.engine.shown : 'embedded' }, 'bridge listening')
  }

  private async receive(): Promise<void> {
    let n = 0
    try {
      for await (const frames of this.router) {
        this.onFrames(frames)
        if (++n % 64 === 0) await yieldToLoop()
      }
    } catch (err) {
      if (this.closing === null) this.log.error({ err }, 'bridge receive loop failed')
    }
  }

  private onFrames(frames: Buffer[]): void {
    const [id, kindBuf] = frames
    if (id === undefined || kindBuf === undefined) return
    const kind = kindBuf.toString()
    if (kind === 'pub') return this.onPublish(id, frames)
    if (kind === 'hist') return this.onHistory(id, frames)
    if (kind === 'stats') {
      void this.routerOut.send([id, 'stats', frames[2]?.toString() ?? '', JSON.stringify(this.stats())]).catch(() => undefined)
      return
    }
    this.counters.dropped.malformed++
  }

  private onPublish(id: Buffer, frames: Buffer[]): void {
    this.counters.received++
    const [, , pubBuf, seqBuf, chBuf, dataBuf, reqBuf, keyBuf] = frames
    const seq = Number(seqBuf?.toString())
    if (pubBuf === undefined || chBuf === undefined || dataBuf === undefined || !Number.isSafeInteger(seq)) {
      this.counters.dropped.malformed++
      return
    }
    const reply = (frame: string[]): void => void this.routerOut.send([id, ...frame]).catch(() => undefined)
    const channel = chBuf.toString()
    if (!CHANNEL.test(channel)) {
      this.counters.dropped.invalidChannel++
      return reply(['nack', String(seq), `invalid channel name ${JSON.stringify(channel.slice(0, 80))}`])
    }
    const data = dataBuf.toString()
    try {
      JSON.parse(data)
    } catch {
      this.counters.dropped.invalidData++
      return reply(['nack', String(seq), 'data is not valid JSON'])
    }
    const idemKey = keyBuf?.toString() ?? ''
    if (idemKey !== '' && !REQUEST_ID.test(idemKey)) {
      this.counters.dropped.invalidKey++
      return reply(['nack', String(seq), `invalid idempotency key ${JSON.stringify(idemKey.slice(0, 80))}: expected 1-128 characters from A-Z a-z 0-9 . _ : -`])
    }
    const reqId = reqBuf?.toString() ?? ''
    const m = { pub: pubBuf.toString(), seq, channel, data, reqId, idemKey, now: Date.now() }
    const done = (result: StoreAccepted): void => {
      if (result.duplicate) {
        this.counters.deduplicated++
        return reply(['ack', String(seq), String(result.offset), result.epoch])
      }
      this.counters.accepted++
      // Messages caused by a request are traceable by its id (make logs REQ=<id>).
      if (reqId !== '') this.log.info({ reqId, channel, offset: result.offset }, 'published')
      reply(['ack', String(seq), String(result.offset), result.epoch])
      if (result.envelope !== null) this.forward(channel, result.envelope)
    }
    const failed = (err: unknown): void => {
      if (err instanceof StoreRefusal) {
        this.counters.dropped.persistFailed++
        return reply(['nack', String(seq), err.reason])
      }
      // Not stored (or not known to be): no answer; the publisher resends the same seq, deduplicated.
      this.counters.dropped.storeUnavailable++
      const now = Date.now()
      if (now - this.lastUnavailableLog > 5000) {
        this.lastUnavailableLog = now
        this.log.warn({ err: err instanceof StoreUnavailable || err instanceof Error ? { message: err.message } : err, channel, unavailable: this.counters.dropped.storeUnavailable }, 'message store unavailable: publish not acknowledged, the publisher resends it')
      }
    }
    let result: StoreAccepted | Promise<StoreAccepted>
    try {
      result = this.store.accept(m)
    } catch (err) {
      return failed(err)
    }
    if (!(result instanceof Promise)) return done(result)
    if (this.inFlight >= MAX_IN_FLIGHT) {
      // Too many waiting on the store: answered later by the publisher's resend.
      this.counters.dropped.storeBusy++
      result.catch(() => undefined)
      return
    }
    this.inFlight++
    result.then(done, failed).finally(() => void this.inFlight--)
  }

  /** Sends one envelope to the local subscribers (the push process). */
  private forward(channel: string, envelope: string): void {
    void this.xpubOut.send([channel, envelope]).then(
      () => void this.counters.forwarded++,
      () => undefined,
    )
  }

  private onHistory(id: Buffer, frames: Buffer[]): void {
    this.counters.historyRequests++
    const callId = frames[2]?.toString() ?? ''
    const channel = frames[3]?.toString() ?? ''
    const after = Number(frames[4]?.toString() ?? '0')
    const epoch = frames[5]?.toString() ?? ''
    const send = (range: Range): void => void this.routerOut.send([id, 'hist', callId, JSON.stringify(range)]).catch(() => undefined)
    let range: Range | Promise<Range>
    try {
      range = this.store.range(channel, Number.isSafeInteger(after) && after >= 0 ? after : 0, epoch === '' ? null : epoch, Date.now())
    } catch (err) {
      this.counters.historyFailed++
      this.log.warn({ err, channel }, 'history request failed: not answered (the asker times out and tells its subscribers)')
      return
    }
    if (!(range instanceof Promise)) return send(range)
    range.then(send, (err: unknown) => {
      this.counters.historyFailed++
      this.log.warn({ err: { message: (err as Error).message }, channel }, 'history request failed: not answered (the asker times out and tells its subscribers)')
    })
  }

  /** History limits apply at once; new sockets or a new data directory need a new process. */
  applyConfig(next: Readonly<BridgeConfig>, engine: Readonly<EngineConfig> | null = this.engine): 'live' | 'restart' {
    if (JSON.stringify(engine) !== JSON.stringify(this.engine)) return 'restart'
    if (next.dir !== this.config.dir || next.tcp !== this.config.tcp || next.dataDir !== this.config.dataDir || next.fsync !== this.config.fsync) return 'restart'
    this.store.setLimits({ count: next.historyCount, ageMs: next.historyAgeMs })
    this.config = next
    return 'live'
  }

  stats(): BridgeCounters & { epoch: string; channels: number; kept: number; inFlight: number } {
    return { ...this.counters, ...this.store.stats(), epoch: this.store.epoch, inFlight: this.inFlight }
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing
    this.closing = (async () => {
      if (this.trimTimer !== null) clearInterval(this.trimTimer)
      this.router.close()
      this.xpub.close()
      await this.loop
      await this.store.close()
      this.log.info({ counters: this.counters }, 'bridge stopped')
    })()
    return this.closing
  }
}
