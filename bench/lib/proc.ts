/**
 * Child processes of the bench. Every child is tracked from spawn to exit so that stopAll() (called
 * in a finally block and on Ctrl-C) can stop each one by its PID; waits are all bounded.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { closeSync, openSync, readFileSync, readdirSync } from 'node:fs'
import { get } from 'node:http'
import { createServer } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'

export { sleep }

export interface Proc {
  pid: number
  child: ChildProcess
  /** Resolves when the process has exited (never rejects). */
  exited: Promise<void>
}

const live = new Set<Proc>()

function track(child: ChildProcess, cmd: string): Proc {
  // A failed spawn (ENOENT) emits 'error' after we have thrown below: do not let it crash the bench.
  child.on('error', () => {})
  if (child.pid === undefined) throw new Error(`Cannot start ${cmd}`)
  const proc: Proc = { pid: child.pid, child, exited: Promise.resolve() }
  proc.exited = new Promise<void>((resolve) => {
    child.once('exit', () => {
      live.delete(proc)
      resolve()
    })
  })
  live.add(proc)
  return proc
}

export function hasExited(proc: Proc): boolean {
  return proc.child.exitCode !== null || proc.child.signalCode !== null
}

/** Starts a long-running process with stdout and stderr appended to logPath. */
export function startLogged(cmd: string, args: string[], env: NodeJS.ProcessEnv, logPath: string): Proc {
  const fd = openSync(logPath, 'a')
  try {
    return track(spawn(cmd, args, { env, stdio: ['ignore', fd, fd] }), cmd)
  } finally {
    closeSync(fd) // the child holds its own copy
  }
}

/** SIGTERM, then SIGKILL if the process is still there after graceMs. */
export async function stop(proc: Proc, graceMs = 10_000): Promise<void> {
  if (hasExited(proc)) return
  proc.child.kill('SIGTERM')
  await Promise.race([proc.exited, sleep(graceMs)])
  if (hasExited(proc)) return
  proc.child.kill('SIGKILL')
  await Promise.race([proc.exited, sleep(5000)])
}

/** Stops every child still running, one by one, by PID. */
export async function stopAll(): Promise<void> {
  for (const proc of [...live]) await stop(proc, 5000)
}

/** SIGKILLs grandchildren (workers) that outlived their parent. */
export function killStrays(pids: readonly number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 0)
      process.kill(pid, 'SIGKILL')
    } catch {
      // already gone
    }
  }
}

export interface RunResult {
  code: number | null
  stdout: string
  stderr: string
}

/** Runs a short command to completion, collecting its output; killed after timeoutMs. */
export async function run(cmd: string, args: string[], timeoutMs: number, env: NodeJS.ProcessEnv = process.env, cwd?: string): Promise<RunResult> {
  const proc = track(spawn(cmd, args, { env, cwd, stdio: ['ignore', 'pipe', 'pipe'] }), cmd)
  let stdout = ''
  let stderr = ''
  proc.child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s))
  proc.child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), timeoutMs)
  try {
    await proc.exited
  } finally {
    clearTimeout(timer)
  }
  return { code: proc.child.exitCode, stdout, stderr }
}

/** Resident memory of a process in KiB (VmRSS), or null when it is gone. */
export function rssKiB(pid: number): number | null {
  try {
    const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m?.[1] === undefined ? null : Number(m[1])
  } catch {
    return null
  }
}

// /proc counts CPU time in clock ticks of 1/100 s (USER_HZ, proc(5); `getconf CLK_TCK`).
const MS_PER_TICK = 10

/** Fields 3.. of /proc/<pid>/stat (the command name, field 2, may hold spaces). */
function statFields(pid: number | 'self'): string[] {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')
}

/** CPU time (user + system, fields 14 and 15) a process has used so far, in ms; null when gone. */
export function cpuMs(pid: number): number | null {
  try {
    const f = statFields(pid)
    return (Number(f[11]) + Number(f[12])) * MS_PER_TICK
  } catch {
    return null
  }
}

/** `root` and every process below it (/proc/<pid>/task/<tid>/children), bounded in depth and count. */
export function treePids(root: number): number[] {
  const out: number[] = []
  const queue = [root]
  for (let i = 0; i < queue.length && out.length < 10_000; i++) {
    const pid = queue[i]!
    out.push(pid)
    let tasks: string[] = []
    try {
      tasks = readdirSync(`/proc/${pid}/task`)
    } catch {
      continue
    }
    for (const tid of tasks) {
      try {
        for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) if (c.trim() !== '') queue.push(Number(c))
      } catch {
        // gone meanwhile
      }
    }
  }
  return out
}

/** CPU ms used so far by every process of the trees under `roots` (processes gone count 0). */
export function treeCpuMs(roots: readonly number[]): Map<number, { ms: number; comm: string }> {
  const out = new Map<number, { ms: number; comm: string }>()
  for (const pid of roots.flatMap(treePids)) {
    const ms = cpuMs(pid)
    if (ms === null) continue
    let comm = ''
    try {
      comm = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((a) => a !== '').slice(0, 3).join(' ')
    } catch {
      // gone
    }
    out.set(pid, { ms, comm })
  }
  return out
}

/** CPU ms used by the bench and its exited children (wrk, status): fields 14 to 17 of its stat. */
export function benchCpuMs(): number {
  const f = statFields('self')
  return (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) * MS_PER_TICK
}

/**
 * The machine's CPU time so far over every CPU, in ms (/proc/stat): in total, and spent by tasks
 * (user, nice, system) or stolen by the hypervisor. Interrupt time is left out of the latter: the
 * loopback traffic of the bench itself is processed there, charged to no task.
 */
export function machineCpuMs(): { busy: number; total: number } {
  // The first line: "cpu  user nice system idle iowait irq softirq steal guest guest_nice".
  const ticks = (readFileSync('/proc/stat', 'utf8').split('\n')[0] ?? '').trim().split(/\s+/).slice(1, 9).map(Number)
  const [user = 0, nice = 0, system = 0, , , , , steal = 0] = ticks
  return { busy: (user + nice + system + steal) * MS_PER_TICK, total: ticks.reduce((a, b) => a + b, 0) * MS_PER_TICK }
}

/** A port that was free a moment ago: the kernel picks one for a listener that is then closed. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const address = server.address()
      const port = typeof address === 'object' && address !== null ? address.port : 0
      server.close(() => (port > 0 ? resolve(port) : reject(new Error('No port assigned'))))
    })
  })
}

/** True when GET url answers 200 within a second. */
export function httpOk(url: string): Promise<boolean> {
  return new Promise((resolve) => {
    const req = get(url, { agent: false, timeout: 1000 }, (res) => {
      res.resume()
      resolve(res.statusCode === 200)
    })
    req.on('timeout', () => req.destroy())
    req.on('error', () => resolve(false))
  })
}

/** Calls check every intervalMs until it returns true; throws after `tries` attempts. */
export async function waitUntil(what: string, tries: number, intervalMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return
    await sleep(intervalMs)
  }
  throw new Error(`Timed out after ${tries} x ${intervalMs} ms waiting for ${what}`)
}

/** A command-line option that must be a whole number > 0. */
export function positiveInt(name: string, raw: string): number {
  const n = Number(raw)
  if (!Number.isInteger(n) || n <= 0) throw new Error(`--${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  return n
}

/**
 * Runs a bench's main(): stops every child it started on the way out, on Ctrl-C or a kill too,
 * and turns a failure into exit code 1 with its stack.
 */
export async function runBench(main: () => Promise<void>): Promise<void> {
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.once(signal, () => void stopAll().finally(() => process.exit(130)))
  try {
    await main()
  } catch (err) {
    process.stderr.write(`bench failed: ${(err as Error)?.stack ?? String(err)}\n`)
    process.exitCode = 1
  } finally {
    await stopAll()
  }
}
