/**
 * supervisord's own log (`<log dir>/supervisord.stdio`, rotated to .1 and .2): the one home of its
 * line format ("2026-12-02 01:05:02,996 WARN exited: push (terminated by SIGKILL; not expected)",
 * local time). `forkyard ps` reads restarts and last exits from it; `make logs` shows its lines
 * beside every other process's, labelled `supervisord`.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Level } from '../log/schema.js'

export interface SupervisordLine {
  /** ISO 8601, from supervisord's local time. */
  time: string
  level: Level
  msg: string
}

const LINE = /^(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d),(\d{3}) (\w+) (.*)$/

/**
 * supervisord's levels (CRIT, ERRO, WARN, INFO, DEBG, TRAC, BLAT) as the log schema's. Its CRIT
 * lines are start-up remarks (running as root, a socket without a password): warnings. Giving up
 * on a program (FATAL state) is an INFO line to supervisord and an error to whoever reads the log.
 */
const LEVELS: Record<string, Level> = { CRIT: 'warn', ERRO: 'error', WARN: 'warn', INFO: 'info', DEBG: 'debug', TRAC: 'trace', BLAT: 'trace' }

/** One line of supervisord's log; null for anything else (a continuation, an empty line). */
export function parseSupervisordLine(raw: string): SupervisordLine | null {
  const m = LINE.exec(raw)
  if (m === null) return null
  const [, y, mo, d, h, mi, s, ms, level, msg] = m as unknown as [string, string, string, string, string, string, string, string, string, string]
  return { time: new Date(+y, +mo - 1, +d, +h, +mi, +s, +ms).toISOString(), level: msg.startsWith('gave up:') ? 'error' : (LEVELS[level] ?? 'info'), msg }
}

export interface ProgramHistory {
  /** Starts since supervisord's last start, minus the first. */
  restarts: number
  lastExit: { reason: string; at: string } | null
}

/** "terminated by SIGKILL; not expected" → "crash: SIGKILL"; stopped: "stopped: code 0". */
export function exitReason(kind: 'exited' | 'stopped', inner: string): string {
  const what = kind === 'stopped' ? 'stopped' : /not expected/.test(inner) ? 'crash' : 'exited'
  const signal = /terminated by (SIG[A-Z0-9]+)/.exec(inner)?.[1]
  const code = /exit status (\d+)/.exec(inner)?.[1]
  return `${what}: ${signal ?? (code !== undefined ? `code ${code}` : inner)}`
}

/**
 * The log since supervisord's last `supervisord started`: for each program, the
 * `spawned: '<name>'` lines after the first, and the last `exited:`/`stopped:` line.
 */
export function parseSupervisorLog(text: string): Record<string, ProgramHistory> {
  let spawns = new Map<string, number>()
  let exits = new Map<string, { reason: string; at: string }>()
  for (const raw of text.split('\n')) {
    const line = parseSupervisordLine(raw)
    if (line === null) continue
    const msg = line.msg
    if (msg.startsWith('supervisord started')) {
      spawns = new Map()
      exits = new Map()
      continue
    }
    const spawned = /^spawned: '([^']+)'/.exec(msg)
    if (spawned !== null) {
      spawns.set(spawned[1]!, (spawns.get(spawned[1]!) ?? 0) + 1)
      continue
    }
    const exit = /^(exited|stopped): (\S+) \((.*)\)$/.exec(msg)
    if (exit !== null) exits.set(exit[2]!, { reason: exitReason(exit[1] as 'exited' | 'stopped', exit[3]!), at: line.time })
  }
  const out: Record<string, ProgramHistory> = {}
  for (const name of new Set([...spawns.keys(), ...exits.keys()])) out[name] = { restarts: Math.max(0, (spawns.get(name) ?? 0) - 1), lastExit: exits.get(name) ?? null }
  return out
}

/** The log since supervisord's last start: the current file, and the rotated ones when it rotated since. */
export function readSupervisorLog(logDir: string): string {
  let text = ''
  for (const name of ['supervisord.stdio', 'supervisord.stdio.1', 'supervisord.stdio.2']) {
    const path = join(logDir, name)
    if (!existsSync(path)) break
    text = readFileSync(path, 'utf8') + text
    if (text.includes('supervisord started')) break
  }
  return text
}
