/**
 * Relays a child's stdout, stderr (wrapped into the log schema when not JSON) and logger pipe
 * (LOG_FD, trusted JSON) into the arbiter's one output, whole lines only (log/relay.ts).
 * Used for every child the arbiter forks: HTTP workers and the jobs process.
 */
import type { ChildProcess } from 'node:child_process'
import type { Readable } from 'node:stream'
import type { LineOutput } from '../log/rotating-file.js'
import { relayLines } from '../log/relay.js'
import { plainLine } from '../log/schema.js'
import { LOG_FD } from './ipc.js'

export function relayChild(child: ChildProcess, output: LineOutput, who: { pid: number; role: string; worker?: number }): void {
  const { pid, ...rest } = who
  const wrap = (stream: string) => (line: string): string =>
    JSON.stringify(plainLine('server', pid, stream === 'stderr' ? 'error' : 'info', line, { ...rest, stream }))
  if (child.stdout) relayLines(child.stdout, output, { wrap: wrap('stdout') })
  if (child.stderr) relayLines(child.stderr, output, { wrap: wrap('stderr') })
  const logs = (child.stdio as unknown[])[LOG_FD] as Readable | null | undefined
  if (logs) relayLines(logs, output, { wrap: wrap('log'), trusted: true })
}
