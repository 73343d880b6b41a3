// The example app that `make up` serves: a test platform that runs CI pipelines asynchronously
// (the first story in background.md), written as a user's own app would be: a plain node:http
// request listener importing only the public 'forkyard' API.
//
//   POST /api/pipelines      {"name":"build","steps":[{"name":"lint","kind":"sleep","ms":800},...]}
//                            -> 202 {id, channel, token}: a background task runs the steps
//   GET  /api/pipelines/:id  -> the pipeline's state, step by step
//   GET  /api/pipelines      -> the most recent pipelines
//   POST /api/notify         {"channel":"news","message":"hi"} -> published to subscribed browsers
//                            (a private:... channel needs "Authorization: Bearer <token>" granting
//                            it, as subscribing does; reserved $... channels are refused)
//
// Every pipeline's state (queued, running, done, failed) is also published on the public channel
// "pipelines", which every open page follows: a second tab sees pipelines started elsewhere.
// Progress goes to the private channel private:pipeline:<id>; the token in the 202 answer lets the
// page subscribe to it. The page itself is static (example/public), served by nginx.
import { codes, config, pushToken, publish, requestId, tasks, verifyPushToken } from 'forkyard'
import { readBody, json, validatePipeline } from './http.mjs'
import { runPipeline } from './pipeline.mjs'

tasks.define('pipeline', runPipeline, { concurrency: 2, timeoutMs: 10 * 60_000, retries: 1, backoffMs: 500, channel: (id) => `private:pipeline:${id}` })

async function describe(idOrRecord) {
  const record = typeof idOrRecord === 'string' ? await tasks.get(idOrRecord) : idOrRecord
  if (record === null) return null
  const id = record.id
  const steps = record.payload.steps.map((s, i) => ({ ...s, state: record.progress?.steps?.[i] ?? (record.state === 'done' ? 'done' : 'pending') }))
  return { id, name: record.payload.name, state: record.state, attempts: record.attempts, createdAt: record.createdAt, updatedAt: record.updatedAt, error: record.error ?? null, steps }
}

export default async function app(req, res) {
  const url = new URL(req.url, 'http://localhost')
  const path = url.pathname
  try {
    if (req.method === 'GET' && path === '/') {
      res.writeHead(302, { Location: '/static/index.html' })
      return res.end()
    }
    if (req.method === 'POST' && path === '/api/pipelines') {
      const input = validatePipeline(await readBody(req, 64 * 1024))
      const { id, duplicate } = await tasks.enqueue('pipeline', input, { idempotencyKey: req.headers['idempotency-key'], reqId: requestId(req) })
      if (!duplicate) publish('pipelines', { id, name: input.name, state: 'queued' }).catch(() => {})
      const channel = `private:pipeline:${id}`
      // The task is accepted whatever happens next: never answer 500 for it (a client would retry
      // and, without an Idempotency-Key, start it twice). Without FORKYARD_PUSH_SECRET there is no
      // token (the 202 says why) and the page polls GET /api/pipelines/:id instead.
      let token = null
      let tokenError
      try {
        token = pushToken([channel], 3600)
      } catch (err) {
        tokenError = err.message
      }
      return json(res, 202, { id, duplicate, channel, token, ...(tokenError !== undefined ? { tokenError } : {}), state: await describe(id) })
    }
    if (req.method === 'GET' && path === '/api/pipelines') {
      // From the task queue (on disk, or in Redis), not from this worker's memory: every worker answers the same.
      return json(res, 200, { pipelines: await Promise.all((await tasks.list(50, 'pipeline')).map(describe)) })
    }
    // Task ids: 32 hex digits; with the Redis engine, a keyed task's id is k-<64 hex digits>.
    const m = /^\/api\/pipelines\/((?:k-)?[0-9a-f]{32,64})$/.exec(path)
    if (req.method === 'GET' && m !== null) {
      const p = await describe(m[1])
      return p === null ? json(res, 404, { error: `no pipeline ${m[1]}` }) : json(res, 200, p)
    }
    if (req.method === 'POST' && path === '/api/notify') {
      const input = JSON.parse(await readBody(req, 64 * 1024))
      if (typeof input?.channel !== 'string' || typeof input?.message !== 'string') {
        return json(res, 400, { error: `expected {"channel": string, "message": string}, got ${JSON.stringify(input).slice(0, 200)}` })
      }
      // Publishing needs what subscribing needs: nothing for a public channel, a token granting a
      // private one; the kit's own $... channels never.
      if (input.channel.startsWith('$')) return json(res, 403, { error: `channel ${input.channel} is reserved` })
      if (input.channel.startsWith('private:')) {
        const token = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1]
        const v = verifyPushToken(config.get('FORKYARD_PUSH_SECRET') ?? '', token)
        if (!v.ok || !v.claims.channels.includes(input.channel)) {
          return json(res, 403, { error: `publishing on ${input.channel} needs "Authorization: Bearer <token>" granting it: ${v.ok ? 'the token does not grant it' : v.reason}` })
        }
      }
      const { offset } = await publish(input.channel, { message: input.message }, { reqId: requestId(req) })
      return json(res, 202, { channel: input.channel, offset })
    }
    return json(res, 404, { error: `no route for ${req.method} ${path}` })
  } catch (err) {
    if (err.status !== undefined) return json(res, err.status, { error: err.message })
    if (err instanceof SyntaxError) return json(res, 400, { error: `expected a JSON body: ${err.message}` })
    // The same Idempotency-Key with another body: not a retry of that pipeline.
    if (err.code === codes.TASK_KEY_CONFLICT) return json(res, 409, { error: err.message })
    throw err
  }
}
