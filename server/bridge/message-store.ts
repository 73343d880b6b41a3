/**
 * What the bridge needs from the place that sequences and keeps messages: the embedded store
 * (History + history file, one host) or the Redis store (several hosts sharing one Redis). The
 * bridge's sockets, frames and counters are the same for both (bridge.ts).
 *
 * `accept` and `range` may answer at once (embedded: no Promise per publish, it costs throughput)
 * or later (Redis).
 */
import type { Range } from './history.js'

/** One publish as the bridge received it (validated: channel name, JSON data). */
export interface PublishIn {
  /** Publisher id and its sequence number. */
  pub: string
  seq: number
  channel: string
  data: string
  reqId: string
  /** The app's idempotency key ('' when none): when given, duplicates are recognised by it, not by (pub, seq). */
  idemKey: string
  now: number
}

export interface StoreAccepted {
  offset: number
  epoch: string
  duplicate: boolean
  /** The envelope for the bridge to forward (embedded); null when the store fans out itself (Redis) or for a duplicate. */
  envelope: string | null
}

/** The publish is refused for good: the bridge answers `nack` with `reason` (the app's publish() rejects). */
export class StoreRefusal extends Error {
  constructor(readonly reason: string) {
    super(reason)
  }
}

/**
 * The store cannot answer now (Redis unreachable): the bridge does not answer at all, and the
 * publisher resends the same (pub, seq) after FORKYARD_PUBLISH_RESEND, which the store dedupes.
 */
export class StoreUnavailable extends Error {}

export interface StoreStats {
  channels: number
  kept: number
  [extra: string]: unknown
}

export interface MessageStore {
  /** The history generation in force (what acks and envelopes carry). */
  readonly epoch: string
  open: () => Promise<void>
  accept: (m: PublishIn) => StoreAccepted | Promise<StoreAccepted>
  /** History.range()'s contract: messages after `after`, and whether they are complete. */
  range: (channel: string, after: number, epoch: string | null, now: number) => Range | Promise<Range>
  setLimits: (limits: { count: number; ageMs: number }) => void
  /** Called every few seconds: trimming, compaction. */
  tick: (now: number) => void
  stats: () => StoreStats
  close: () => Promise<void>
}

/** The dedupe identity of a publish: the idempotency key when there is one, else (publisher, seq). */
export function dedupeIdentity(m: Pick<PublishIn, 'pub' | 'seq' | 'idemKey'>): { pub: string; seq: number } {
  // '=' cannot occur in a publisher id (hostname:pid:hex), so a key never collides with a publisher.
  return m.idemKey === '' ? { pub: m.pub, seq: m.seq } : { pub: `key=${m.idemKey}`, seq: 0 }
}
