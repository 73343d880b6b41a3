// Types of push-client.js (plain ESM, no build step) for TypeScript users and the tests.
// One message as the push server sends it: the bridge's Envelope (server/bridge/wire.ts) with
// type "message". test/unit/bridge-wire.test.ts fails to type-check when the two differ.
export interface PushMessage {
  type: 'message'
  channel: string
  offset: number
  epoch: string
  ts: number
  /** The request that caused the message, when the publisher passed one. */
  reqId?: string
  data: unknown
}

export interface PushClientOptions {
  /** WebSocket class: the browser's by default; pass `ws` in Node 20. */
  WebSocket?: typeof globalThis.WebSocket
  /** Called for private:... channels on every (re)subscribe, so expired tokens are replaced. */
  getToken?: (channel: string) => string | Promise<string>
  minDelayMs?: number
  maxDelayMs?: number
}

export interface PushStatus {
  state: 'connecting' | 'open' | 'closed' | 'stopped'
  attempt?: number
  code?: number
  reason?: string
  willRetry?: boolean
}

export interface PushGap {
  channel: string
  reason: 'epoch-changed' | 'history-trimmed' | 'history-unavailable' | 'offset-jump' | string
  epoch: string
  offset: number
  /** For an offset jump: the first and last offsets that were never delivered. */
  missed?: [number, number]
}

export declare class PushClient {
  constructor(url: string, options?: PushClientOptions)
  subscribe(channel: string, handler: (data: unknown, msg: PushMessage) => void, from?: { offset?: number; epoch?: string }): () => void
  position(channel: string): { offset: number | null; epoch: string | null } | null
  close(): void
  onstatus: ((status: PushStatus) => void) | null
  ongap: ((gap: PushGap) => void) | null
  onrecovered: ((info: { channel: string; offset: number }) => void) | null
  /** A private channel's token expired and there is no getToken to fetch a new one. */
  onexpired: ((info: { channel: string; offset: number }) => void) | null
}
