// Idle WebSocket clients for bench/push-memory.ts: opens COUNT connections to URL (batches of 200),
// subscribes each to CHANNEL, prints {"msg":"ready","open":n} once every one is subscribed, then
// holds them, reading nothing more, until SIGTERM (its default action ends the process).
import WebSocket from 'ws'

const url = process.env.URL
const count = Number(process.env.COUNT ?? 1000)
const channel = process.env.CHANNEL ?? 'idle'
const sockets = []
let subscribed = 0
let failed = 0

function open() {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, { perMessageDeflate: false })
    sockets.push(ws)
    ws.on('error', () => {
      failed++
      resolve()
    })
    ws.once('open', () => {
      ws.once('message', () => subscribed++)
      ws.send(JSON.stringify({ type: 'subscribe', channel }))
      resolve()
    })
  })
}

for (let i = 0; i < count; i += 200) await Promise.all(Array.from({ length: Math.min(200, count - i) }, open))
const deadline = Date.now() + 60_000
while (subscribed + failed < count && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50))
process.stdout.write(JSON.stringify({ msg: 'ready', open: subscribed, failed }) + '\n')
// The sockets keep the process alive until it is stopped.
