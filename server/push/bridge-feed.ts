/**
 * The push process's side of the bridge: a SUB socket receiving every envelope, and a DEALER for
 * history and stats requests. It hands envelopes on per channel in offset order with no gap:
 * an offset jump (XPUB high-water mark, the pub/sub "slow joiner" after a reconnect) is filled
 * from the bridge's history before anything later is delivered; an epoch change (bridge restarted
 * without its history file) is reported as a reset, never passed over silently.
 */
import type { Logger } from 'pino'
import { Dealer, Subscriber } from 'zeromq'
import { ForkyardError, codes } from '../errors.js'
import type { Range } from '../bridge/history.js'
import { SendQueue, bridgeEndpoints, yieldToLoop, type Envelope } from '../bridge/wire.js'

export interface FeedHandler {
  /** One message, in order. `text` is the envelope JSON as the bridge made it. Returns how many sends it made. */
  message: (channel: string, offset: number, text: string, env: Envelope) => number | void
  /** History for `channel` was lost (new epoch): subscribers must be told. */
  reset: (channel: string, epoch: string, offset: number, reason: string) => void
  /** Channels with subscribers: an epoch change concerns them even before their next message. */
  subscribed?: () => Iterable<string>
}

/**
 * One event-loop turn of the feed does at most this many units of work (a message handed over is
 * one, each send it causes one more) and runs at most SLICE_MS; then timers, signals and
 * /healthz get their turn. Measured on 2 cores: ~8,000 framed sends take a few ms.
 */
const SLICE_WORK = 8_000
const SLICE_MS = 8

interface ChannelState {
  last: number
  /** While a gap is being filled, later envelopes wait here. */
  waiting: { offset: number; text: string; env: Envelope }[] | null
}

export class BridgeFeed {
  private readonly sub = new Subscriber({ receiveHighWaterMark: 100_000, linger: 0 })
  private readonly req = new Dealer({ linger: 0 })
  private readonly reqOut = new SendQueue(this.req)
  private readonly channels = new Map<string, ChannelState>()
  private readonly calls = new Map<string, { resolve: (frames: string[]) => void; timer: NodeJS.Timeout }>()
  private nextCall = 0
  epoch: string | null = null
  /** After an epoch change every channel starts at offset 1 of the new epoch, whenever it is first seen. */
  private epochChanged = false
  readonly counters = { received: 0, gapsFilled: 0, gapsUnfillable: 0, resets: 0, duplicates: 0, yields: 0 }
  private loops: Promise<void>[] = []
  /** Messages handed over plus sends they caused since the last turn of the event loop. */
  private work = 0
  /** When the current slice of work began (performance.now()), and whether this turn began one. */
  private sliceStart = 0
  private turnOpen = false
  // A tick queued from a promise chain runs when the chain waits for I/O: the turn's end.
  private readonly endTurn = (): void => void (this.turnOpen = false)

  constructor(
    dir: string,
    private readonly handler: FeedHandler,
    private readonly log: Logger,
  ) {
    const ep = bridgeEndpoints(dir)
    this.sub.connect(ep.out)
    this.sub.subscribe()
    this.req.connect(ep.in)
  }

  start(): void {
    this.loops = [this.receiveEnvelopes(), this.receiveReplies()]
  }

  /** Asks the bridge for what `channel` holds after `after` (and whether that is complete). */
  async history(channel: string, after: number, epoch: string | null, timeoutMs = 5000): Promise<Range> {
    const frames = await this.call(['hist', '', channel, String(after), epoch ?? ''], timeoutMs)
    return JSON.parse(frames[2] ?? '{}') as Range
  }

  async stats(timeoutMs = 1000): Promise<Record<string, unknown>> {
    const frames = await this.call(['stats', ''], timeoutMs)
    return JSON.parse(frames[2] ?? '{}') as Record<string, unknown>
  }

  private call(frames: string[], timeoutMs: number): Promise<string[]> {
    const id = String(++this.nextCall)
    frames[1] = id
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.calls.delete(id)
        reject(new ForkyardError(codes.BRIDGE_TIMEOUT, `The bridge did not answer a ${frames[0]} request within ${timeoutMs} ms`))
      }, timeoutMs)
      this.calls.set(id, { resolve, timer })
      this.reqOut.send(frames).catch((err: unknown) => {
        clearTimeout(timer)
        this.calls.delete(id)
        reject(err as Error)
      })
    })
  }

  private async receiveReplies(): Promise<void> {
    try {
      for await (const raw of this.req) {
        // A resume storm is 1,000 history replies, each sent on to its client: bounded per turn too.
        this.beginWork()
        if (this.sliceSpent()) await this.nextSlice()
        this.beginWork()
        const frames = raw.map((f) => f.toString())
        const call = this.calls.get(frames[1] ?? '')
        if (call === undefined) continue
        clearTimeout(call.timer)
        this.calls.delete(frames[1] ?? '')
        call.resolve(frames)
      }
    } catch {
      // closed
    }
  }

  private async receiveEnvelopes(): Promise<void> {
    try {
      for await (const [topic, body] of this.sub) {
        this.beginWork()
        if (topic !== undefined && body !== undefined) this.onEnvelope(topic.toString(), body.toString())
        // Measured: without this, a backlog of hundreds of messages is handed over without
        // returning to the event loop, and health checks and SIGTERM wait for seconds. The turn is
        // bounded by work and by time: one message to 1,000 subscribers is 1,000 sends.
        if (this.sliceSpent()) await this.nextSlice()
      }
    } catch (err) {
      this.log.debug({ err }, 'feed receive loop ended')
    }
  }

  private onEnvelope(channel: string, text: string): void {
    this.counters.received++
    let env: Envelope
    try {
      env = JSON.parse(text) as Envelope
    } catch {
      return
    }
    if (this.epoch !== env.epoch) {
      if (this.epoch !== null) {
        // The bridge came back without its history: every channel starts over, at offset 1 of the
        // new epoch, not at the first message that happens to arrive: messages the bridge
        // acknowledged before this feed saw the new epoch are filled from its history.
        const names = new Set([...this.channels.keys(), ...(this.handler.subscribed?.() ?? [])])
        this.log.warn({ from: this.epoch, to: env.epoch, channels: names.size }, 'bridge epoch changed: history lost, subscribers are told')
        this.channels.clear()
        for (const name of names) {
          this.counters.resets++
          this.handler.reset(name, env.epoch, 0, 'epoch-changed')
          this.channels.set(name, { last: 0, waiting: null })
        }
        this.epochChanged = true
      }
      this.epoch = env.epoch
    }
    let st = this.channels.get(channel)
    if (st === undefined) {
      if (!this.epochChanged) {
        // First sight of a channel in the epoch this feed started in: subscribers came in through
        // the history (push-server subscribe), so this is where the live stream begins.
        this.channels.set(channel, { last: env.offset, waiting: null })
        this.deliver(channel, env.offset, text, env)
        return
      }
      st = { last: 0, waiting: null }
      this.channels.set(channel, st)
    }
    if (st.waiting !== null) {
      st.waiting.push({ offset: env.offset, text, env })
      return
    }
    if (env.offset <= st.last) {
      this.counters.duplicates++
      return
    }
    if (env.offset === st.last + 1) {
      st.last = env.offset
      this.deliver(channel, env.offset, text, env)
      return
    }
    st.waiting = [{ offset: env.offset, text, env }]
    void this.fill(channel, st)
  }

  /** Fills the gap after st.last from history, then releases what waited, in order. */
  private async fill(channel: string, st: ChannelState): Promise<void> {
    const from = st.last
    try {
      const range = await this.history(channel, from, this.epoch)
      if (range.complete) this.counters.gapsFilled++
      else {
        this.counters.gapsUnfillable++
        this.log.warn({ channel, after: from, last: range.last }, 'gap not covered by the bridge history: subscribers are told')
        this.handler.reset(channel, range.epoch, range.last, 'history-trimmed')
      }
      for (const text of range.messages) {
        const env = JSON.parse(text) as Envelope
        if (env.offset <= st.last) continue
        st.last = env.offset
        this.deliver(channel, env.offset, text, env)
      }
    } catch (err) {
      this.log.warn({ err, channel }, 'gap fill failed: subscribers are told')
      this.handler.reset(channel, this.epoch ?? '', st.last, 'history-unavailable')
    }
    const waiting = st.waiting ?? []
    st.waiting = null
    waiting.sort((a, b) => a.offset - b.offset)
    for (const w of waiting) {
      if (w.offset <= st.last) continue
      st.last = w.offset
      this.deliver(channel, w.offset, w.text, w.env)
    }
  }

  /** Starts counting a slice when this is the first work of an event-loop turn. */
  private beginWork(): void {
    if (this.turnOpen) return
    this.turnOpen = true
    this.work = 0
    this.sliceStart = performance.now()
    process.nextTick(this.endTurn)
  }

  /** True once this turn did SLICE_WORK units of work or ran SLICE_MS: time to let timers and /healthz in. */
  private sliceSpent(): boolean {
    return this.work >= SLICE_WORK || performance.now() - this.sliceStart >= SLICE_MS
  }

  private async nextSlice(): Promise<void> {
    this.counters.yields++
    await yieldToLoop()
  }

  /** Work done outside the receive loops (history replay of a resume) counts towards the slice. */
  addWork(units: number): void {
    this.beginWork()
    this.work += units
  }

  private deliver(channel: string, offset: number, text: string, env: Envelope): void {
    this.work += 1 + (this.handler.message(channel, offset, text, env) ?? 0)
  }

  async close(): Promise<void> {
    this.sub.close()
    this.req.close()
    for (const c of this.calls.values()) clearTimeout(c.timer)
    await Promise.all(this.loops)
  }
}
