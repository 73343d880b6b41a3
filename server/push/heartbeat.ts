/**
 * The push process's heartbeat: every second it publishes `$sys:heartbeat` through the bridge and
 * watches its own message come back on the feed. The process is ready (/readyz) only while the
 * last one came back within FORKYARD_PUSH_HEARTBEAT_STALE, so readiness covers the whole path
 * publish -> bridge -> feed that browsers' messages take.
 */
import { Publisher, type PublisherStats } from '../bridge/publisher.js'
import type { Envelope } from '../bridge/wire.js'

export const HEARTBEAT = '$sys:heartbeat'

export interface PushReadiness {
  ready: boolean
  lastHeartbeatMsAgo: number | null
  heartbeatLagMs: number | null
}

export class Heartbeat {
  private readonly publisher: Publisher
  private lastHeartbeat = 0
  /** How long the last heartbeat took to come back, null before the first. */
  lagMs: number | null = null

  constructor(bridgeDir: string) {
    this.publisher = new Publisher({ dir: bridgeDir, queue: 100, resendMs: 2000 })
  }

  get publisherStats(): PublisherStats {
    return this.publisher.stats
  }

  beat(): void {
    this.publisher.publish(HEARTBEAT, { ts: Date.now(), from: this.publisher.id }).catch(() => {
      // The bridge is down or the queue is full: readiness goes red by itself.
    })
  }

  /** A heartbeat came back on the feed: only this process's own (not another push process's) counts. */
  received(env: Envelope): void {
    const d = env.data as { ts?: number; from?: string }
    if (d.from === this.publisher.id && typeof d.ts === 'number') {
      this.lastHeartbeat = Date.now()
      this.lagMs = this.lastHeartbeat - d.ts
    }
  }

  /** Alive and bridge heartbeat fresh (younger than `staleMs`). */
  ready(staleMs: number): PushReadiness {
    const ago = this.lastHeartbeat === 0 ? null : Date.now() - this.lastHeartbeat
    return { ready: ago !== null && ago < staleMs, lastHeartbeatMsAgo: ago, heartbeatLagMs: this.lagMs }
  }

  close(): Promise<void> {
    return this.publisher.close()
  }
}
