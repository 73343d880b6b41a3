/**
 * Starts the real `forkyard serve` entry point for integration tests: a free port chosen here,
 * a fresh run directory, stdout parsed as JSON lines, readiness by polling, teardown by PID.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import type { TestContext } from 'node:test'
import { controlRequest, type ControlCommand } from '../../server/arbiter/control.js'
import type { ArbiterStatus } from '../../server/arbiter/arbiter.js'
import { freePort } from '../../bench/lib/proc.js'

export const root = resolve(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../..')
export const bin = join(root, 'dist/bin/forkyard.js')

export type LogLine = Record<string, unknown> & { msg?: string; level?: string }

export { freePort }

export function tempDir(prefix = 'forkyard-test-'): string {
  return mkdtempSync(join(tmpdir(), prefix))
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms))
}

/** Polls `check` every `everyMs` until it returns a truthy value; bounded by `timeoutMs`. */
export async function until<T>(what: string, check: () => T | Promise<T>, timeoutMs = 15_000, everyMs = 50): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs
  for (let i = 0; Date.now() < deadline; i++) {
    const v = await check()
    if (v) return v as NonNullable<T>
    await sleep(everyMs)
  }
  throw new Error(`Timed out after ${timeoutMs} ms waiting for ${what}`)
}

/** Collects a child's stdout as JSON lines (an unparsable line is kept as { unparsed }) and its raw output. */
export function captureOutput(child: ChildProcess): { logs: LogLine[]; output: () => { out: string; err: string } } {
  const logs: LogLine[] = []
  let out = ''
  let err = ''
  let pending = ''
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    out += chunk
    pending += chunk
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) {
      if (line === '') continue
      try {
        logs.push(JSON.parse(line) as LogLine)
      } catch {
        logs.push({ unparsed: line })
      }
    }
  })
  child.stderr!.setEncoding('utf8')
  child.stderr!.on('data', (chunk: string) => (err += chunk))
  return { logs, output: () => ({ out, err }) }
}

export interface Started {
  child: ChildProcess
  port: number
  runDir: string
  dir: string
  /** Every JSON line written on stdout so far. */
  logs: LogLine[]
  /** Raw stdout and stderr, for failure output. */
  raw: () => string
  waitLog: (pred: (l: LogLine) => boolean, what: string, timeoutMs?: number) => Promise<LogLine>
  status: () => Promise<ArbiterStatus>
  control: (cmd: ControlCommand) => Promise<unknown>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  url: (path: string) => string
  /** Stops reading the server's stdout (so its pipe fills up, as with a slow log reader) or resumes. */
  pauseOutput: (paused: boolean) => void
}

export interface StartOptions {
  app: string
  env?: Record<string, string>
  /** Wait for 'all workers ready' (default true). */
  waitReady?: boolean
  cwd?: string
  /** Extra arguments after `serve <app>`. */
  args?: string[]
}

export async function startServer(t: TestContext, options: StartOptions): Promise<Started> {
  const port = await freePort()
  const dir = options.cwd ?? tempDir()
  const runDir = join(dir, 'run')
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? '/tmp',
    FORKYARD_BIND: `127.0.0.1:${port}`,
    FORKYARD_RUN_DIR: runDir,
    FORKYARD_WORKERS: '2',
    ...options.env,
  }
  // An empty value removes the variable (so that .env can provide it).
  for (const [k, v] of Object.entries(env)) if (v === '') delete env[k]
  const child = spawn(process.execPath, [bin, 'serve', options.app, ...(options.args ?? [])], {
    cwd: dir,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const { logs, output } = captureOutput(child)
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, signal) => res({ code, signal })))
  let done = false
  void exited.then(() => (done = true))
  t.after(async () => {
    if (!done && child.pid !== undefined) {
      child.kill('SIGTERM')
      const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await exited
      clearTimeout(timer)
    }
  })
  const raw = (): string => { const o = output(); return `--- stdout ---\n${o.out.slice(-20_000)}\n--- stderr ---\n${o.err.slice(-5000)}` }
  const waitLog = async (pred: (l: LogLine) => boolean, what: string, timeoutMs = 15_000): Promise<LogLine> => {
    try {
      return await until(what, () => logs.find(pred), timeoutMs)
    } catch (e) {
      throw new Error(`${(e as Error).message}\n${raw()}`)
    }
  }
  const started: Started = {
    child,
    port,
    runDir,
    dir,
    logs,
    raw,
    waitLog,
    status: () => controlRequest(join(runDir, 'arbiter.sock'), 'status') as Promise<ArbiterStatus>,
    control: (cmd) => controlRequest(join(runDir, 'arbiter.sock'), cmd),
    exited,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    pauseOutput: (paused) => (paused ? child.stdout!.pause() : child.stdout!.resume()),
  }
  if (options.waitReady !== false) {
    await Promise.race([
      waitLog((l) => l.msg === 'all workers ready', 'all workers ready'),
      exited.then(({ code }) => {
        throw new Error(`forkyard exited with code ${code} before it was ready\n${raw()}`)
      }),
    ])
  }
  return started
}
