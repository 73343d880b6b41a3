/**
 * publish() and push tokens for app code, configured from the settings in force (config/runtime.ts):
 * the publisher at its first use (its settings need a new process), the token secret at every call.
 */
import { loadPublisherConfig, loadPushConfig } from './config/messaging.js'
import { Publisher, sharedPublisher, type PublishOptions, type Published } from './bridge/publisher.js'
import { signPushToken } from './push/tokens.js'
import { config } from './config/runtime.js'
import { ForkyardError, codes } from './errors.js'

/**
 * Publishes `data` (anything JSON.stringify accepts) on `channel` through the bridge. Resolves with
 * the channel offset once the bridge has accepted it; rejects (never silently drops) when the
 * queue for an unreachable bridge is full (FORKYARD_ERR_PUBLISH_QUEUE_FULL) or the data is bad.
 */
export function publish(channel: string, data: unknown, options: PublishOptions = {}): Promise<Published> {
  // `$...` channels are the kit's own (the push process's heartbeat): app code cannot forge them.
  if (channel.startsWith('$')) return Promise.reject(new ForkyardError(codes.PUBLISH_INVALID, `Expected a channel that is not reserved (names starting with $ are the kit's), got ${JSON.stringify(channel)}`))
  return sharedPublisher(() => new Publisher(loadPublisherConfig(config.settings()))).publish(channel, data, options)
}

/** Statistics of this process's publisher (queued, acknowledged, rejected...). */
export function publisherStats(): Publisher['stats'] {
  return sharedPublisher(() => new Publisher(loadPublisherConfig(config.settings()))).stats
}

/** A token granting `channels` (private:...) for `ttlSeconds`, signed with FORKYARD_PUSH_SECRET. */
export function pushToken(channels: string[], ttlSeconds = 3600): string {
  return signPushToken(loadPushConfig(config.settings()).secret, { channels, ttlSeconds })
}

export type { PublishOptions, Published }
