/**
 * Tools of the kill-matrix test: POST load that records when each request failed and how (refused
 * before it was sent, dropped after, or answered with an error status), /readyz probes through
 * nginx, supervisord's own view of its programs (XML-RPC on its socket, without blocking the event
 * loop the load runs on), and `forkyard` commands run asynchronously with a deadline.
 */
import { spawn } from 'node:child_process'
import { Agent, request } from 'node:http'
import { join } from 'node:path'
import { postOnce } from './load.js'
import { bin } from './server.js'
import type { StackRun } from './stack.js'

export interface Failure {
  /** ms since the epoch when the request was started (written to its connection, or a connection asked for). */
  sentAt: number
  /** ms since the epoch when the request ended in failure. */
  at: number
  kind: 'refused' | 'dropped' | 'status'
  detail: string
}

export interface PostLoad {
  ok: number
  /** Requests sent and not yet answered, now. */
  outstanding: () => number
  failures: Failure[]
  stop: () => Promise<void>
}

/**
 * `concurrency` clients, each POSTing `path` back to back over its own keep-alive connection
 * (one shared agent with that many sockets). A refused connection is retried after 20 ms, so that
 * an outage counts its refusals at a bounded rate. Bounded by stop() and by `maxMs`.
 */
export function startPostLoad(port: number, path: string, concurrency: number, isOk: (status: number, text: string) => boolean, maxMs = 120_000): PostLoad {
  const agent = new Agent({ keepAlive: true, maxSockets: concurrency })
  let running = true
  let outstanding = 0
  const deadline = Date.now() + maxMs
  const load: PostLoad = { ok: 0, outstanding: () => outstanding, failures: [], stop: async () => {} }
  const loops = Array.from({ length: concurrency }, async (_, i) => {
    for (let n = 0; running && Date.now() < deadline && n < 10_000_000; n++) {
      outstanding++
      const sentAt = Date.now()
      try {
        const { status, text } = await postOnce(agent, port, path, `kill-matrix ${i}-${n}`)
        outstanding--
        if (isOk(status, text)) load.ok++
        else load.failures.push({ sentAt, at: Date.now(), kind: 'status', detail: `${status} ${text.slice(0, 120).trim()}` })
      } catch (err) {
        outstanding--
        const e = err as NodeJS.ErrnoException
        const refused = e.code === 'ECONNREFUSED'
        load.failures.push({ sentAt, at: Date.now(), kind: refused ? 'refused' : 'dropped', detail: `${e.code ?? ''} ${e.message}`.trim() })
        if (refused) await new Promise((r) => setTimeout(r, 20))
      }
    }
  })
  load.stop = async () => {
    running = false
    await Promise.all(loops)
    agent.destroy()
  }
  return load
}

export interface ReadySample {
  at: number
  status: number
  /** Components that said ok: false (or why there was no answer). */
  bad: string[]
}

/** GET /readyz through nginx on a fresh connection; status 0 when nothing answered. */
export function probeReady(port: number, timeoutMs = 1500): Promise<ReadySample> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', agent: false, timeout: timeoutMs }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => {
        let bad: string[] = []
        try {
          const body = JSON.parse(text) as { components?: Record<string, { ok?: boolean }> }
          bad = Object.entries(body.components ?? {})
            .filter(([, c]) => c.ok !== true)
            .map(([name]) => name)
        } catch {
          bad = [`not JSON: ${text.replace(/\s+/g, ' ').slice(0, 60)}`]
        }
        resolve({ at: Date.now(), status: res.statusCode ?? 0, bad })
      })
      res.on('error', (err) => resolve({ at: Date.now(), status: 0, bad: [err.message] }))
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', (err) => resolve({ at: Date.now(), status: 0, bad: [(err as NodeJS.ErrnoException).code ?? err.message] }))
    req.end()
  })
}

export interface ProgramInfo {
  state: string
  pid: number
}

/** supervisord's programs (name -> state, pid), or null when its socket does not answer. */
export function supervisorPrograms(runDir: string, timeoutMs = 1500): Promise<Map<string, ProgramInfo> | null> {
  const body = '<?xml version="1.0"?><methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>'
  return new Promise((resolve) => {
    const req = request({ socketPath: join(runDir, 'supervisor.sock'), path: '/RPC2', method: 'POST', agent: false, timeout: timeoutMs, headers: { 'Content-Type': 'text/xml', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => (text += c))
      res.on('end', () => {
        const out = new Map<string, ProgramInfo>()
        for (const struct of text.split('<struct>').slice(1)) {
          const str = (name: string): string | undefined => new RegExp(`<name>${name}</name>\\s*<value><string>([^<]*)</string></value>`).exec(struct)?.[1]
          const int = (name: string): number => Number(new RegExp(`<name>${name}</name>\\s*<value><int>(-?\\d+)</int></value>`).exec(struct)?.[1] ?? 0)
          const name = str('name')
          if (name !== undefined) out.set(name, { state: str('statename') ?? '?', pid: int('pid') })
        }
        resolve(res.statusCode === 200 ? out : null)
      })
      res.on('error', () => resolve(null))
    })
    req.on('timeout', () => req.destroy(new Error('timeout')))
    req.on('error', () => resolve(null))
    req.end(body)
  })
}

export interface CliResult {
  status: number | null
  output: string
  ms: number
}

/** `forkyard <args>` as the test's stack runs it (same environment and directory), without blocking; killed (SIGKILL) after `timeoutMs`. */
export function cliAsync(s: StackRun, args: string[], timeoutMs: number): Promise<CliResult> {
  const started = Date.now()
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], { cwd: s.projectDir, env: s.env, stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.setEncoding('utf8').on('data', (c: string) => (output += c))
    child.stderr.setEncoding('utf8').on('data', (c: string) => (output += c))
    const timer = setTimeout(() => {
      output += `\n(forkyard ${args.join(' ')} still running after ${timeoutMs / 1000} s: killed by the test)`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (err) => (output += `\n${err.message}`))
    child.on('close', (code) => {
      clearTimeout(timer)
      resolve({ status: code, output, ms: Date.now() - started })
    })
  })
}

export interface ArbiterView {
  pid: number
  expectedWorkers: number
  readyWorkers: number
  jobsPid: number | null
  workers: { pid: number; inflight?: number }[]
}

/** `forkyard status --json`, or null when the arbiter does not answer. */
export async function arbiterStatus(s: StackRun, timeoutMs = 5000): Promise<ArbiterView | null> {
  const r = await cliAsync(s, ['status', '--json'], timeoutMs)
  if (r.status !== 0) return null
  try {
    return JSON.parse(r.output) as ArbiterView
  } catch {
    return null
  }
}
