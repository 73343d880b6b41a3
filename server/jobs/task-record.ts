/**
 * The on-disk task record and what every part of the file-backed queue shares about it: the
 * record's shape, its states (one directory each), time-ordered task ids, the canonical JSON
 * used to compare payloads, and the durable write (tmp/, fsync, rename, fsync of the directory)
 * that puts a record or a key file in place whole.
 */
import { randomBytes, randomInt } from 'node:crypto'
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { join } from 'node:path'

export type TaskState = 'queued' | 'running' | 'done' | 'failed'

export interface TaskRecord {
  id: string
  name: string
  payload: unknown
  state: TaskState
  attempts: number
  reqId: string | null
  createdAt: string
  updatedAt: string
  /** Not before this time (ms since epoch): retry backoff. */
  notBefore: number
  error?: string
  result?: unknown
  progress?: unknown
  /** The file in keys/ of the idempotency key this task was enqueued with (removed with the task). */
  keyFile?: string
}

export const STATES: TaskState[] = ['queued', 'running', 'done', 'failed']

const V7 = /^[0-9a-f]{12}7[0-9a-f]{3}[89ab][0-9a-f]{15}$/
const MIN_TIME = Date.UTC(2020, 0, 1)

let lastMs = 0
let seq = 0

/**
 * A UUIDv7 as 32 hex digits: 48 bits of ms since the epoch, then a 12-bit sequence (strictly
 * increasing within this process, so ids made in one millisecond keep their order), then random.
 */
export function newTaskId(now = Date.now()): string {
  const r = randomBytes(8)
  r[0] = (r[0]! & 0x3f) | 0x80
  // A time before the last id's (given explicitly, or the clock stepped back by more than the
  // sequence covers): that time, unordered within its millisecond.
  if (now < lastMs - 1000) return `${now.toString(16).padStart(12, '0')}7${randomInt(0, 0x1000).toString(16).padStart(3, '0')}${r.toString('hex')}`
  if (now > lastMs) {
    lastMs = now
    seq = randomInt(0, 0x400)
  } else if (++seq > 0xfff) {
    lastMs++
    seq = randomInt(0, 0x400)
  }
  return `${lastMs.toString(16).padStart(12, '0')}7${seq.toString(16).padStart(3, '0')}${r.toString('hex')}`
}

/** Creation time (ms) of a time-ordered id; null for ids of earlier versions (random or key hashes). */
export function timeOfId(id: string): number | null {
  if (!V7.test(id)) return null
  const ms = parseInt(id.slice(0, 12), 16)
  return ms >= MIN_TIME && ms <= Date.now() + 86_400_000 ? ms : null
}

/** JSON with sorted object keys: the same data gives the same text whatever the key order. */
export function canonical(v: unknown): string | undefined {
  return JSON.stringify(v, (_k, x: unknown) => (x !== null && typeof x === 'object' && !Array.isArray(x) ? Object.fromEntries(Object.entries(x).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) : x))
}

/** A task file's record; throws when the file is gone or unreadable. */
export function readRecord(file: string): TaskRecord {
  return JSON.parse(readFileSync(file, 'utf8')) as TaskRecord
}

/** The task with this id in whichever state directory holds it; null for no such task (or not an id). */
export function readTask(dir: string, id: string): TaskRecord | null {
  if (!/^[0-9a-f]{32}$/.test(id)) return null
  for (const state of STATES) {
    try {
      return readRecord(join(dir, state, `${id}.json`))
    } catch {
      // not in this state
    }
  }
  return null
}

/** Writes a record into a state's directory: whole (tmp/ then rename) and durable before it returns. */
export function writeRecord(dir: string, state: TaskState, r: TaskRecord): void {
  const tmp = join(dir, 'tmp', `${r.id}.${process.pid}.json`)
  writeDurable(tmp, JSON.stringify(r))
  renameSync(tmp, join(dir, state, `${r.id}.json`))
  fsyncDir(join(dir, state))
}

export function writeDurable(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o600)
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}
