/**
 * The embedded message store (FORKYARD_ENGINE=embedded): History in memory, optionally the
 * append-only history file (store.ts). Every answer is synchronous, as before the store became an
 * interface: no Promise per publish.
 */
import type { Logger } from 'pino'
import type { BridgeConfig } from '../config/messaging.js'
import { History, type Range } from './history.js'
import { StoreRefusal, dedupeIdentity, type MessageStore, type PublishIn, type StoreAccepted, type StoreStats } from './message-store.js'
import { HistoryStore, newEpoch } from './store.js'

export class EmbeddedStore implements MessageStore {
  private history!: History
  private file: HistoryStore | null = null

  constructor(
    private readonly config: Readonly<BridgeConfig>,
    private readonly log: Logger,
  ) {}

  get epoch(): string {
    return this.history.epoch
  }

  open(): Promise<void> {
    const limits = { count: this.config.historyCount, ageMs: this.config.historyAgeMs }
    if (this.config.dataDir !== '') {
      this.file = new HistoryStore(this.config.dataDir, this.config.fsync)
      const { history, restored, corrupt, newEpoch: fresh, damaged } = this.file.open(limits, Date.now())
      if (damaged) this.log.error({ corrupt, dataDir: this.config.dataDir }, 'history file damaged in the middle (not a line cut by a crash): starting a new epoch, every subscriber is told its history is gone')
      this.history = history
      this.log.info({ epoch: history.epoch, restored, corrupt, dataDir: this.config.dataDir, newEpoch: fresh }, fresh ? 'history file started: new epoch' : 'history restored from file')
    } else {
      this.history = new History(newEpoch(), limits)
      this.log.info({ epoch: this.history.epoch }, 'history in memory only: a restart starts a new epoch')
    }
    return Promise.resolve()
  }

  accept(m: PublishIn): StoreAccepted {
    const id = dedupeIdentity(m)
    const result = this.history.accept(id.pub, id.seq, m.channel, m.data, m.now, m.reqId)
    if (result.duplicate || result.stored === null) return { offset: result.offset, epoch: this.history.epoch, duplicate: true, envelope: null }
    if (this.file !== null) {
      try {
        this.file.append(m.channel, result.stored)
      } catch (err) {
        this.log.error({ err, channel: m.channel }, 'history file write failed: publish refused')
        throw new StoreRefusal('the bridge could not write its history file')
      }
    }
    return { offset: result.offset, epoch: this.history.epoch, duplicate: false, envelope: result.stored.envelope }
  }

  range(channel: string, after: number, epoch: string | null, now: number): Range {
    return this.history.range(channel, after, epoch, now)
  }

  setLimits(limits: { count: number; ageMs: number }): void {
    this.history.setLimits(limits)
    this.history.trim(Date.now())
  }

  tick(now: number): void {
    this.history.trim(now)
    this.file?.maybeCompact(this.history)
  }

  stats(): StoreStats {
    return { channels: this.history.lastOffsets().size, kept: this.history.keptCount() }
  }

  close(): Promise<void> {
    this.file?.close()
    return Promise.resolve()
  }
}
