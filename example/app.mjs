// The example app that `make up` serves: a plain node:http request listener, as a user's own app
// would be. It imports only the public 'forkyard' API.
//   GET  /                 a greeting with the worker's pid
//   POST /api/notify       {"channel":"news","message":"hi"} -> published to browsers, 202 {offset}
import { publish, requestId } from 'forkyard'

const MAX_BODY = 64 * 1024

function json(res, status, body) {
  const text = JSON.stringify(body)
  res.writeHead(status, { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) })
  res.end(text)
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    let size = 0
    const chunks = []
    req.on('data', (c) => {
      size += c.length
      if (size > MAX_BODY) reject(Object.assign(new Error(`body larger than ${MAX_BODY} bytes`), { status: 413 }))
      else chunks.push(c)
    })
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')))
    req.on('error', reject)
  })
}

export default async function app(req, res) {
  const url = new URL(req.url, 'http://localhost')
  if (req.method === 'GET' && url.pathname === '/') {
    res.setHeader('Content-Type', 'text/plain')
    return res.end(`forkyard example app, worker pid ${process.pid}\n`)
  }
  if (req.method === 'POST' && url.pathname === '/api/notify') {
    let input
    try {
      input = JSON.parse(await readBody(req))
    } catch (err) {
      return json(res, err.status ?? 400, { error: err.status ? err.message : 'expected a JSON body like {"channel":"news","message":"hi"}' })
    }
    if (typeof input?.channel !== 'string' || typeof input?.message !== 'string') {
      return json(res, 400, { error: `expected {"channel": string, "message": string}, got ${JSON.stringify(input).slice(0, 200)}` })
    }
    try {
      const { offset } = await publish(input.channel, { message: input.message }, { reqId: requestId(req) })
      return json(res, 202, { channel: input.channel, offset })
    } catch (err) {
      return json(res, 503, { error: err.message, code: err.code })
    }
  }
  return json(res, 404, { error: `no route for ${req.method} ${url.pathname}` })
}
