/**
 * Continuous POST load over keep-alive connections, as the brief asks: a proxy retries a failed
 * GET on its own, so only non-idempotent requests over reused connections show dropped requests.
 * Bounded by a stop() call and by `maxMs`.
 */
import { Agent, request } from 'node:http'

export interface LoadResult {
  ok: number
  failures: string[]
  /** Response bodies by first word after "hello", e.g. version -> count. */
  bodies: Map<string, number>
}

export interface Load {
  stop: () => Promise<LoadResult>
  result: LoadResult
}

export function postOnce(agent: Agent, port: number, path: string, body: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'POST', agent, headers: { 'Content-Type': 'text/plain', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }))
      res.on('error', reject)
    })
    req.setTimeout(20_000, () => req.destroy(new Error('request timed out after 20 s')))
    req.on('error', reject)
    req.end(body)
  })
}

export function get(port: number, path: string, headers: Record<string, string> = {}, agent?: Agent): Promise<{ status: number; text: string; headers: Record<string, string | string[] | undefined> }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method: 'GET', headers, agent: agent ?? false }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text, headers: res.headers }))
      res.on('error', reject)
    })
    req.setTimeout(20_000, () => req.destroy(new Error('request timed out after 20 s')))
    req.on('error', reject)
    req.end()
  })
}

/**
 * `concurrency` loops each POSTing `path` back to back over a shared keep-alive agent. The
 * expected body check is `check(status, text)`: a string return is a failure description.
 */
export function startLoad(port: number, options: { path: string; concurrency?: number; maxMs?: number; check: (status: number, text: string) => string | null; classify?: (text: string) => string }): Load {
  const concurrency = options.concurrency ?? 8
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  const result: LoadResult = { ok: 0, failures: [], bodies: new Map() }
  let running = true
  const deadline = Date.now() + (options.maxMs ?? 60_000)
  const loops = Array.from({ length: concurrency }, async (_, i) => {
    for (let n = 0; running && Date.now() < deadline && n < 1_000_000; n++) {
      try {
        const { status, text } = await postOnce(agent, port, options.path, `payload ${i}-${n}`)
        const problem = options.check(status, text)
        if (problem === null) {
          result.ok++
          const key = options.classify?.(text)
          if (key !== undefined) result.bodies.set(key, (result.bodies.get(key) ?? 0) + 1)
        } else result.failures.push(problem)
      } catch (err) {
        result.failures.push((err as Error).message)
      }
    }
  })
  return {
    result,
    stop: async () => {
      running = false
      await Promise.all(loops)
      agent.destroy()
      return result
    },
  }
}
