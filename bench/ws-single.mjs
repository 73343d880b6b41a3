// The limit case of bench/push.ts: one Node process, a `ws` WebSocketServer on 127.0.0.1:$PORT that
// speaks the subset of forkyard's push protocol the bench uses (subscribe -> subscribed, then
// message frames) and generates the messages itself. No bridge, no second process, no
// acknowledgements, no history: what is left is the fan-out to the sockets, the floor any push
// server on Node pays.
//   GET /healthz                      200 once listening
//   GET /run?channel=&count=&rate=    generates and broadcasts the messages (same schedule as the
//                                     forkyard publisher), answers when done with {sendMs}
// Prints "ready <pid>" once listening; SIGTERM's default action stops it.
import { randomBytes } from 'node:crypto'
import { createServer } from 'node:http'
import process from 'node:process'
import { WebSocketServer } from 'ws'
import { paced, wallMs } from './push-pace.mjs'

const epoch = randomBytes(6).toString('hex')
/** channel -> subscribed sockets */
const channels = new Map()
const offsets = new Map()

const http = createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://x')
  if (url.pathname === '/healthz') return void res.end('ok\n')
  if (url.pathname === '/run') return void run(url.searchParams, res)
  res.statusCode = 404
  res.end('not found\n')
})

// The same settings as the push process's WebSocketServer.
const wss = new WebSocketServer({ server: http, path: '/ws', maxPayload: 64 * 1024, perMessageDeflate: false })
wss.on('connection', (ws) => {
  ws.on('error', () => {})
  ws.on('message', (raw) => {
    let m
    try {
      m = JSON.parse(raw.toString())
    } catch {
      return ws.close(4400, 'bad message')
    }
    if (m?.type !== 'subscribe' || typeof m.channel !== 'string') return
    let set = channels.get(m.channel)
    if (set === undefined) channels.set(m.channel, (set = new Set()))
    set.add(ws)
    ws.send(JSON.stringify({ type: 'subscribed', channel: m.channel, epoch, offset: offsets.get(m.channel) ?? 0 }))
    ws.on('close', () => set.delete(ws))
  })
})

/** Sends one message to every subscriber, serialized once, framed like forkyard's envelopes. */
function broadcast(channel, data) {
  const offset = (offsets.get(channel) ?? 0) + 1
  offsets.set(channel, offset)
  const frame = Buffer.from(`{"type":"message","channel":${JSON.stringify(channel)},"offset":${offset},"epoch":"${epoch}","ts":${Date.now()},"data":${JSON.stringify(data)}}`)
  for (const ws of channels.get(channel) ?? []) ws.send(frame, { binary: false })
}

async function run(params, res) {
  const channel = params.get('channel') ?? 'bench'
  const count = Number(params.get('count') ?? 100)
  const rate = Number(params.get('rate') ?? 0)
  // Unlimited rate: 32 messages per event-loop turn, as the push process takes 32 envelopes from
  // the bridge per turn; socket I/O runs in between. (One per turn was measured 10-25% slower: the
  // clients then read one frame per wakeup.) There are no acknowledgements to pace by.
  const { sendMs } = await paced({ count, rate, yieldEvery: 32, send: (i, due) => void broadcast(channel, due === null ? { t: wallMs(), i } : { t: wallMs(), s: due, i }) })
  res.setHeader('Content-Type', 'application/json')
  res.end(JSON.stringify({ count, failed: 0, sendMs }))
}

http.listen(Number(process.env.PORT), '127.0.0.1', () => process.stdout.write(`ready ${process.pid}\n`))
