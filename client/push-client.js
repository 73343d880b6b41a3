// forkyard push client: plain ESM for browsers (and Node with a WebSocket class), no build step.
//
//   import { PushClient } from '/static/forkyard/push-client.js'   (nginx serves the kit's client/ there)
//   const client = new PushClient('wss://example.com/ws', { getToken: () => fetch('/api/token').then(r => r.text()) })
//   client.onstatus = (s) => console.log(s.state, s)        // connecting | open | closed | stopped
//   const off = client.subscribe('news', (data, msg) => render(data))
//   client.ongap = ({ channel, reason }) => reloadState(channel) // history did not cover a gap
//
// It reconnects with jittered exponential backoff ("full jitter") and resubscribes from the last
// offset it saw on each channel, so the server sends exactly the missed messages (recovered: true)
// or says explicitly that it could not (ongap). Messages already seen are never delivered twice.

/** Close codes after which reconnecting cannot help (README "WebSocket protocol"). */
const PERMANENT = new Set([4400, 4403, 4413, 1003, 1009])

export class PushClient {
  /**
   * @param {string} url  ws:// or wss:// URL of the push endpoint (/ws behind nginx)
   * @param {{ WebSocket?: typeof WebSocket, getToken?: () => (string | Promise<string>), minDelayMs?: number, maxDelayMs?: number }} [options]
   */
  constructor(url, options = {}) {
    this.url = url
    this.WebSocket = options.WebSocket ?? globalThis.WebSocket
    this.getToken = options.getToken ?? null
    this.minDelayMs = options.minDelayMs ?? 250
    this.maxDelayMs = options.maxDelayMs ?? 10_000
    /** @type {Map<string, { handler: (data: unknown, msg: object) => void, offset: number | null, epoch: string | null }>} */
    this.channels = new Map()
    this.attempt = 0
    this.ws = null
    this.stopped = false
    this.timer = null
    this.onstatus = null
    this.ongap = null
    this.onrecovered = null
    this.onexpired = null
    this.connect()
  }

  /** Subscribes; `from` = { offset, epoch } resumes after that offset. Returns an unsubscribe function. */
  subscribe(channel, handler, from = {}) {
    this.channels.set(channel, { handler, offset: from.offset ?? null, epoch: from.epoch ?? null })
    void this.sendSubscribe(channel)
    return () => {
      this.channels.delete(channel)
      this.send({ type: 'unsubscribe', channel })
    }
  }

  /** Last offset and epoch seen on a channel (save them to resume after a page reload). */
  position(channel) {
    const c = this.channels.get(channel)
    return c === undefined ? null : { offset: c.offset, epoch: c.epoch }
  }

  close() {
    this.stopped = true
    clearTimeout(this.timer)
    this.ws?.close(1000, 'client closed')
    this.status('stopped')
  }

  connect() {
    if (this.stopped) return
    this.status('connecting', { attempt: this.attempt })
    const ws = new this.WebSocket(this.url)
    this.ws = ws
    ws.onopen = () => {
      this.attempt = 0
      this.status('open')
      for (const channel of this.channels.keys()) void this.sendSubscribe(channel)
    }
    ws.onmessage = (event) => this.onMessage(typeof event.data === 'string' ? event.data : String(event.data))
    ws.onclose = (event) => {
      if (this.ws !== ws) return
      this.ws = null
      const permanent = PERMANENT.has(event.code) || (event.code === 4401 && this.getToken === null)
      this.status('closed', { code: event.code, reason: event.reason, willRetry: !permanent && !this.stopped })
      if (permanent || this.stopped) return
      // Full jitter: a random delay up to an exponentially growing cap spreads reconnects out.
      const cap = Math.min(this.maxDelayMs, this.minDelayMs * 2 ** this.attempt++)
      this.timer = setTimeout(() => this.connect(), Math.random() * cap)
    }
    ws.onerror = () => {}
  }

  async sendSubscribe(channel) {
    const c = this.channels.get(channel)
    if (c === undefined || this.ws === null || this.ws.readyState !== 1) return
    const msg = { type: 'subscribe', channel }
    if (c.offset !== null) msg.offset = c.offset
    if (c.epoch !== null) msg.epoch = c.epoch
    if (channel.startsWith('private:') && this.getToken !== null) msg.token = await this.getToken(channel)
    this.send(msg)
  }

  send(msg) {
    if (this.ws !== null && this.ws.readyState === 1) this.ws.send(JSON.stringify(msg))
  }

  onMessage(text) {
    let msg
    try {
      msg = JSON.parse(text)
    } catch {
      return
    }
    const c = this.channels.get(msg.channel)
    if (c === undefined) return
    switch (msg.type) {
      case 'message':
        if (c.epoch === msg.epoch && c.offset !== null && msg.offset <= c.offset) return
        // The server fills gaps or says so; a jump it did not announce is reported, never passed over.
        if (c.epoch === msg.epoch && c.offset !== null && msg.offset > c.offset + 1) {
          this.ongap?.({ channel: msg.channel, reason: 'offset-jump', epoch: msg.epoch, offset: msg.offset, missed: [c.offset + 1, msg.offset - 1] })
        }
        c.offset = msg.offset
        c.epoch = msg.epoch
        c.handler(msg.data, msg)
        return
      case 'subscribed':
        if (msg.recovered === false) this.ongap?.({ channel: msg.channel, reason: msg.reason, epoch: msg.epoch, offset: msg.offset })
        if (msg.recovered === true) this.onrecovered?.({ channel: msg.channel, offset: msg.offset })
        if (msg.recovered !== true) c.offset = msg.offset
        c.epoch = msg.epoch
        return
      case 'unsubscribed':
        // The token of a private channel expired: subscribe again with a fresh one, from the last
        // offset seen, so nothing is missed; without getToken the application is told.
        if (msg.reason !== 'token-expired') return
        if (this.getToken !== null) void this.sendSubscribe(msg.channel)
        else this.onexpired?.({ channel: msg.channel, offset: msg.offset })
        return
      case 'reset':
        c.offset = msg.offset
        c.epoch = msg.epoch
        // "lagging": this client fell more than FORKYARD_PUSH_MAX_LAG behind; the server closes with
        // 4429 and the reconnect resumes from this offset (ongap only if history no longer covers it).
        if (msg.reason === 'lagging') return
        this.ongap?.({ channel: msg.channel, reason: msg.reason, epoch: msg.epoch, offset: msg.offset })
        return
    }
  }

  status(state, extra = {}) {
    this.onstatus?.({ state, ...extra })
  }
}
