/**
 * Starts a forkyard service (`forkyard bridge`, `forkyard push`) or any node script for a test:
 * stdout parsed as JSON lines, stopped by PID at teardown.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import type { TestContext } from 'node:test'
import { bin, captureOutput, until, type LogLine } from './server.js'

export interface Proc {
  child: ChildProcess
  logs: LogLine[]
  raw: () => string
  waitLog: (pred: (l: LogLine) => boolean, what: string, timeoutMs?: number) => Promise<LogLine>
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  stop: (signal?: NodeJS.Signals) => Promise<{ code: number | null; signal: NodeJS.Signals | null }>
}

export function startProc(t: TestContext, args: string[], env: Record<string, string>, options: { script?: string; cwd?: string } = {}): Proc {
  const child = spawn(process.execPath, options.script !== undefined ? [options.script, ...args] : [bin, ...args], {
    cwd: options.cwd ?? process.cwd(),
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  })
  const { logs, output } = captureOutput(child)
  let done = false
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) =>
    child.once('exit', (code, signal) => {
      done = true
      res({ code, signal })
    }),
  )
  const raw = (): string => {
    const o = output()
    return `--- ${args.join(' ')} stdout ---\n${o.out.slice(-10_000)}\n--- stderr ---\n${o.err.slice(-5000)}`
  }
  const stop = async (signal: NodeJS.Signals = 'SIGTERM'): Promise<{ code: number | null; signal: NodeJS.Signals | null }> => {
    if (!done) child.kill(signal)
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    const r = await exited
    clearTimeout(timer)
    return r
  }
  t.after(async () => {
    if (!done) await stop()
  })
  return {
    child,
    logs,
    raw,
    exited,
    stop,
    waitLog: async (pred, what, timeoutMs = 15_000) => {
      try {
        return await until(what, () => logs.find(pred), timeoutMs)
      } catch (e) {
        throw new Error(`${(e as Error).message}\n${raw()}`)
      }
    },
  }
}
