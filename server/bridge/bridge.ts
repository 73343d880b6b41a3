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
import type { BridgeConfig } from '../config/messaging.js'
import { History, type Range } from './history.js'
import { HistoryStore, newEpoch } from './store.js'
import { CHANNEL, SendQueue, bridgeEndpoints, yieldToLoop } from './wire.js'

export interface BridgeCounters {
  received: number
  accepted: number
  forwarded: number
  deduplicated: number
  dropped: { invalidChannel: number; invalidData: number; malformed: number; persistFailed: number }
  historyRequests: number
}

export class Bridge {
  readonly counters: BridgeCounters = {
    received: 0,
    accepted: 0,
    forwarded: 0,
    deduplicated: 0,
    dropped: { invalidChannel: 0, invalidData: 0, malformed: 0, persistFailed: 0 },
    historyRequests: 0,
  }
  private readonly router = new Router({ sendHighWaterMark: 100_000, receiveHighWaterMark: 100_000 })
  // Subscribers that fall more than this behind lose messages at the XPUB (ZeroMQ drops silently
  // past the high-water mark); the push process sees the offset jump and fills it from history.
  private readonly xpub = new XPublisher({ sendHighWaterMark: 100_000 })
  private readonly routerOut = new SendQueue(this.router)
  private readonly xpubOut = new SendQueue(this.xpub)
  private history!: History
  private store: HistoryStore | null = null
  private trimTimer: NodeJS.Timeout | null = null
  private closing: Promise<void> | null = null
  private loop: Promise<void> | null = null

  constructor(
    private config: Readonly<BridgeConfig>,
    private readonly log: Logger,
  ) {}

  get epoch(): string {
    return this.history.epoch
  }

  async start(): Promise<void> {
    mkdirSync(this.config.dir, { recursive: true, mode: 0o700 })
    chmodSync(this.config.dir, 0o700)
    const limits = { count: this.config.historyCount, ageMs: this.config.historyAgeMs }
    const now = Date.now()
    if (this.config.dataDir !== '') {
      this.store = new HistoryStore(this.config.dataDir, this.config.fsync)
      const { history, restored, corrupt, newEpoch: fresh, damaged } = this.store.open(limits, now)
      if (damaged) this.log.error({ corrupt, dataDir: this.config.dataDir }, 'history file damaged in the middle (not a line cut by a crash): starting a new epoch, every subscriber is told its history is gone')
      this.history = history
      this.log.info({ epoch: history.epoch, restored, corrupt, dataDir: this.config.dataDir, newEpoch: fresh }, fresh ? 'history file started: new epoch' : 'history restored from file')
    } else {
      this.history = new History(newEpoch(), limits)
      this.log.info({ epoch: this.history.epoch }, 'history in memory only: a restart starts a new epoch')
    }
    const ep = bridgeEndpoints(this.config.dir)
    await this.router.bind(ep.in)
    await this.xpub.bind(ep.out)
    if (this.config.tcp !== '') {
      const [host, port] = this.config.tcp.split(':')
      await this.router.bind(`tcp://${host}:${port}`)
      await this.xpub.bind(`tcp://${host}:${Number(port) + 1}`)
    }
    this.trimTimer = setInterval(() => {
      this.history.trim(Date.now())
      this.store?.maybeCompact(this.history)
    }, 5000)
    this.loop = this.receive()
    this.log.info({ in: ep.in, out: ep.out, tcp: this.config.tcp || undefined, historyCount: limits.count, historyAgeMs: limits.ageMs }, 'bridge listening')
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
    const [, , pubBuf, seqBuf, chBuf, dataBuf, reqBuf] = frames
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
    const now = Date.now()
    const reqId = reqBuf?.toString() ?? ''
    const result = this.history.accept(pubBuf.toString(), seq, channel, data, now, reqId)
    if (result.duplicate) {
      this.counters.deduplicated++
      return reply(['ack', String(seq), String(result.offset), this.history.epoch])
    }
    if (this.store !== null && result.stored !== null) {
      try {
        this.store.append(channel, result.stored)
      } catch (err) {
        this.counters.dropped.persistFailed++
        this.log.error({ err, channel }, 'history file write failed: publish refused')
        return reply(['nack', String(seq), 'the bridge could not write its history file'])
      }
    }
    this.counters.accepted++
    // Messages caused by a request are traceable by its id (make logs REQ=<id>).
    if (reqId !== '') this.log.info({ reqId, channel, offset: result.offset }, 'published')
    reply(['ack', String(seq), String(result.offset), this.history.epoch])
    void this.xpubOut.send([channel, result.stored!.envelope]).then(
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
    const range: Range = this.history.range(channel, Number.isSafeInteger(after) && after >= 0 ? after : 0, epoch === '' ? null : epoch, Date.now())
    void this.routerOut.send([id, 'hist', callId, JSON.stringify(range)]).catch(() => undefined)
  }

  /** History limits apply at once; new sockets or a new data directory need a new process. */
  applyConfig(next: Readonly<BridgeConfig>): 'live' | 'restart' {
    if (next.dir !== this.config.dir || next.tcp !== this.config.tcp || next.dataDir !== this.config.dataDir || next.fsync !== this.config.fsync) return 'restart'
    this.history.setLimits({ count: next.historyCount, ageMs: next.historyAgeMs })
    this.history.trim(Date.now())
    this.config = next
    return 'live'
  }

  stats(): BridgeCounters & { epoch: string; channels: number; kept: number } {
    return { ...this.counters, epoch: this.history.epoch, channels: this.history.lastOffsets().size, kept: this.history.keptCount() }
  }

  close(): Promise<void> {
    if (this.closing !== null) return this.closing
    this.closing = (async () => {
      if (this.trimTimer !== null) clearInterval(this.trimTimer)
      this.router.close()
      this.xpub.close()
      await this.loop
      this.store?.close()
      this.log.info({ counters: this.counters }, 'bridge stopped')
    })()
    return this.closing
  }
}
