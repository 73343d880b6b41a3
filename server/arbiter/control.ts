/**
 * The arbiter's control socket: a Unix socket (mode 0600, in the run directory) speaking one JSON
 * line per request and one per answer. `forkyard status|reload|stop` are its clients.
 */
import { chmodSync, unlinkSync } from 'node:fs'
import { createConnection, createServer, type Server } from 'node:net'
import { ForkyardError, codes } from '../errors.js'
import type { WorkerStatus } from './worker-handle.js'
import type { LastExit, RestartCause } from './exits.js'

/** The jobs process in ArbiterStatus: pid null while it is being restarted. */
export interface JobsStatus {
  pid: number | null
  restarts: number
  restartsByCause: Record<RestartCause, number>
  lastExit: LastExit | null
}

export type ControlCommand = 'status' | 'reload' | 'ttin' | 'ttou' | 'stop'

/** The answer to `status` (`forkyard status`, `forkyard ps`). */
export interface ArbiterStatus {
  pid: number
  generation: number
  expectedWorkers: number
  readyWorkers: number
  reloading: boolean
  bind: string[]
  configVersion: string
  /** The jobs process (tasks and singletons), null when not running. */
  jobsPid: number | null
  workers: WorkerStatus[]
  /** Worker restarts by cause, every cause present (the jobs process's are in `jobs`). */
  restarts: Record<RestartCause, number>
  /** The jobs process, null when FORKYARD_JOBS is off. */
  jobs: JobsStatus | null
}
const commands: readonly string[] = ['status', 'reload', 'ttin', 'ttou', 'stop']

export async function listenControl(path: string, handle: (cmd: ControlCommand) => Promise<unknown>): Promise<Server> {
  try {
    unlinkSync(path)
  } catch {
    // no stale socket
  }
  const server = createServer((socket) => {
    let buf = ''
    let answered = false
    socket.setEncoding('utf8')
    socket.on('error', () => socket.destroy())
    socket.on('data', (chunk: string) => {
      // One command per connection: whatever follows the first line is ignored.
      if (answered) return
      buf += chunk
      if (buf.length > 4096) return socket.destroy()
      const nl = buf.indexOf('\n')
      if (nl === -1) return
      answered = true
      let cmd: unknown
      try {
        cmd = (JSON.parse(buf.slice(0, nl)) as { cmd?: unknown }).cmd
      } catch {
        cmd = undefined
      }
      if (typeof cmd !== 'string' || !commands.includes(cmd)) {
        socket.end(JSON.stringify({ ok: false, error: `Expected a command, one of ${commands.join(', ')}, got ${JSON.stringify(cmd ?? buf.slice(0, nl))}` }) + '\n')
        return
      }
      handle(cmd as ControlCommand).then(
        (result) => socket.end(JSON.stringify({ ok: true, result }) + '\n'),
        (err: unknown) => socket.end(JSON.stringify({ ok: false, error: (err as Error)?.message ?? String(err) }) + '\n'),
      )
    })
  })
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject)
    server.listen(path, () => {
      server.off('error', reject)
      resolve()
    })
  })
  chmodSync(path, 0o600)
  return server
}

export function controlRequest(path: string, cmd: ControlCommand, timeoutMs = 10_000): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = createConnection(path)
    let buf = ''
    const timer = setTimeout(() => {
      socket.destroy()
      reject(new ForkyardError(codes.CONTROL, `No answer from the control socket ${path} within ${timeoutMs} ms`))
    }, timeoutMs)
    socket.setEncoding('utf8')
    socket.on('connect', () => socket.write(JSON.stringify({ cmd }) + '\n'))
    socket.on('data', (chunk: string) => (buf += chunk))
    socket.on('error', (err) => {
      clearTimeout(timer)
      reject(new ForkyardError(codes.CONTROL, `Cannot reach the forkyard control socket ${path} (is the server running with this FORKYARD_RUN_DIR?): ${err.message}`, { cause: err }))
    })
    socket.on('end', () => {
      clearTimeout(timer)
      try {
        const answer = JSON.parse(buf) as { ok: boolean; result?: unknown; error?: string }
        if (answer.ok) resolve(answer.result)
        else reject(new ForkyardError(codes.CONTROL, answer.error ?? 'control command failed'))
      } catch (err) {
        reject(new ForkyardError(codes.CONTROL, `Malformed answer from ${path}: ${JSON.stringify(buf.slice(0, 200))}`, { cause: err }))
      }
    })
  })
}
