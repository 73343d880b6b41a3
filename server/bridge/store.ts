/**
 * The bridge's optional history file: an append-only JSON-lines file in FORKYARD_BRIDGE_DATA_DIR,
 * written synchronously before a publish is acknowledged, so an acknowledged message survives a
 * bridge crash (kill -9; the page cache keeps it; not a power cut, there is no fsync per message).
 * The epoch is kept beside it; a missing or unreadable state starts a new epoch. The file is
 * rewritten (temp file + rename, so never half-written) once it holds far more than is kept.
 */
import { randomBytes } from 'node:crypto'
import { closeSync, existsSync, fdatasyncSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { History, type Stored } from './history.js'
import { envelopeOf } from './wire.js'

interface Line {
  c: string
  o: number
  t?: number
  p?: string
  s?: number
  d?: unknown
  r?: string
  /** Marker: the channel reached offset `o`, no message kept. */
  m?: 1
}

function lineOf(channel: string, s: Stored): string {
  const r = s.reqId === '' ? '' : `,"r":${JSON.stringify(s.reqId)}`
  return `{"c":${JSON.stringify(channel)},"o":${s.offset},"t":${s.ts},"p":${JSON.stringify(s.pub)},"s":${s.seq}${r},"d":${s.data}}`
}

export function newEpoch(): string {
  return randomBytes(6).toString('hex')
}

export class HistoryStore {
  private fd: number | null = null
  private lines = 0
  private readonly file: string
  private readonly stateFile: string

  /**
   * `fsync`: fdatasync after each append, before the bridge acknowledges (FORKYARD_BRIDGE_FSYNC).
   * Without it a message is written (write(2)) before its acknowledgement: it survives a crash of
   * any process, not a power loss or kernel crash.
   */
  constructor(
    private readonly dir: string,
    private readonly fsync = false,
  ) {
    this.file = join(dir, 'bridge-history.jsonl')
    this.stateFile = join(dir, 'bridge-state.json')
  }

  /**
   * Loads the history (same epoch) or starts a new epoch; `corrupt` counts unreadable lines. A last
   * line cut short by a crash mid-write was never acknowledged and is skipped. A damaged line
   * anywhere else held an acknowledged message of some channel, which one cannot be told: the
   * history cannot be trusted to have no hole, so a new epoch starts (`damaged`), and every
   * subscriber is told its history is gone instead of resuming across a hole it cannot see.
   */
  open(limits: { count: number; ageMs: number }, now: number): { history: History; restored: number; corrupt: number; newEpoch: boolean; damaged: boolean } {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 })
    let epoch: string | null = null
    try {
      const state = JSON.parse(readFileSync(this.stateFile, 'utf8')) as { epoch?: unknown }
      if (typeof state.epoch === 'string' && existsSync(this.file)) epoch = state.epoch
    } catch {
      epoch = null
    }
    let lines: (Line | null)[] = []
    if (epoch !== null) {
      lines = readFileSync(this.file, 'utf8').split('\n').filter((raw) => raw !== '').map((raw) => {
        try {
          return JSON.parse(raw) as Line
        } catch {
          return null
        }
      })
    }
    const corrupt = lines.filter((l) => l === null).length
    const damaged = lines.slice(0, -1).includes(null)
    if (damaged) epoch = null
    const fresh = epoch === null
    const history = new History(epoch ?? newEpoch(), limits)
    let restored = 0
    if (!fresh) {
      for (const line of lines) {
        // The last line cut short by a crash mid-write: it was never acknowledged.
        if (line === null) continue
        if (line.m === 1) {
          history.restoreLast(line.c, line.o)
          continue
        }
        const data = JSON.stringify(line.d)
        const ts = line.t ?? now
        const reqId = line.r ?? ''
        const stored: Stored = { offset: line.o, ts, envelope: envelopeOf(line.c, line.o, history.epoch, ts, data, reqId), pub: line.p ?? '', seq: line.s ?? -1, data, reqId }
        history.restore(line.c, stored)
        restored++
      }
      history.trim(now)
    }
    writeFileSync(this.stateFile, JSON.stringify({ epoch: history.epoch }) + '\n', { mode: 0o600 })
    this.compact(history)
    return { history, restored, corrupt, newEpoch: fresh, damaged }
  }

  append(channel: string, stored: Stored): void {
    if (this.fd === null) return
    const line = `${lineOf(channel, stored)}\n`
    writeSync(this.fd, line)
    if (this.fsync) fdatasyncSync(this.fd)
    this.lines++
  }

  /** Rewrites the file with only what is kept once it has grown past twice that (plus slack). */
  maybeCompact(history: History): void {
    if (this.lines > 2 * history.keptCount() + 10_000) this.compact(history)
  }

  private compact(history: History): void {
    const tmp = `${this.file}.tmp`
    const out: string[] = []
    const keptLast = new Map<string, number>()
    for (const [channel, s] of history.kept()) {
      out.push(lineOf(channel, s))
      keptLast.set(channel, s.offset)
    }
    for (const [channel, last] of history.lastOffsets()) {
      if (keptLast.get(channel) !== last) out.push(JSON.stringify({ c: channel, o: last, m: 1 }))
    }
    writeFileSync(tmp, out.length === 0 ? '' : out.join('\n') + '\n', { mode: 0o600 })
    if (this.fd !== null) closeSync(this.fd)
    renameSync(tmp, this.file)
    this.fd = openSync(this.file, 'a', 0o600)
    this.lines = out.length
  }

  close(): void {
    if (this.fd !== null) closeSync(this.fd)
    this.fd = null
  }
}
