/**
 * The durable task queue: one JSON file per task, moved between directories by rename, the way a
 * maildir works. A task is written to tmp/, fsync'ed, renamed into queued/ and the directory
 * fsync'ed before enqueue() resolves, so a kill -9 of anything right after loses nothing. Claiming
 * is a rename into running/ (atomic: one claimer wins); what is found in running/ at start was
 * interrupted and goes back to queued/. Idempotency keys are files in keys/ created whole and
 * exclusively (written in tmp/, then link(): one creator wins, and nobody reads a half-written key).
 * Task ids are time-ordered (UUIDv7 as 32 hex digits), so a directory listing sorted by name is
 * a listing by creation time: list() and prune() read no more files than they return or remove.
 * No library: better-sqlite3 needs a native build here and node:sqlite does not exist on Node 20;
 * rename, link and O_EXCL on one local filesystem give the guarantees needed.
 */
import { createHash, randomBytes, randomInt } from 'node:crypto'
import { closeSync, fsyncSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { ForkyardError, codes } from '../errors.js'
import { isAlive } from '../process/pidfile.js'

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

export interface PageOptions {
  /** At most this many tasks (1 to LIST_MAX; default 50). */
  limit?: number
  /** Only tasks of this name. */
  name?: string
  /** Only tasks in this state (or these states); default all. */
  state?: TaskState | TaskState[]
  /** Only tasks older than this: the `next` of the previous page, or a task id. */
  before?: string
}

export interface TaskPage {
  tasks: TaskRecord[]
  /** Pass as `before` for the next page; null when there is nothing older. */
  next: string | null
}

const STATES: TaskState[] = ['queued', 'running', 'done', 'failed']

/** Largest page, and most task files one list() call reads (a name filter may skip many). */
export const LIST_MAX = 1000
/**
 * A key file whose task does not exist was left by an enqueue that failed or was killed between
 * the two writes, or its writer is between them right now. Its writer is known dead (same host,
 * pid gone) or, on another host or with a reused pid, it is older than this: taken over.
 */
export const KEY_STALE_MS = 10_000

/** What a key file holds: the id its task has or will have, and who wrote it when. */
interface KeyOwner {
  id: string
  pid: number
  host: string
  at: number
}

type Step = { result: { id: string; duplicate: boolean } } | { waitMs: number }

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

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

function writeDurable(file: string, text: string): void {
  const fd = openSync(file, 'w', 0o600)
  try {
    writeSync(fd, text)
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r')
  try {
    fsyncSync(fd)
  } finally {
    closeSync(fd)
  }
}

export class TaskQueue {
  private countCache = new Map<TaskState, { mtimeMs: number; at: number; n: number }>()
  /** The last read of queued/ for ready(): records oldest first, and the directory's mtime then. */
  private queuedScan: { mtimeMs: number; at: number; records: TaskRecord[] } | null = null

  constructor(readonly dir: string) {
    for (const d of [...STATES, 'tmp', 'keys']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 })
  }

  /**
   * Durable before it returns. With an idempotency key, the same key gives the same task once:
   * one caller gets `duplicate: false`, every other (in any process, at the same moment or later,
   * for as long as the task is kept) gets `duplicate: true` and the same id. The same key with
   * another payload throws FORKYARD_ERR_TASK_KEY_CONFLICT. Blocks (rarely, briefly) while another
   * process is between writing the key and the task; enqueueAsync() waits without blocking.
   */
  enqueue(name: string, payload: unknown, options: { idempotencyKey?: string; reqId?: string | null } = {}): { id: string; duplicate: boolean } {
    const started = Date.now()
    for (;;) {
      const step = this.step(name, payload, options, started)
      if ('result' in step) return step.result
      sleepSync(step.waitMs)
    }
  }

  /** enqueue() for request handlers: a wait for a concurrent enqueue of the same key does not block the event loop. */
  async enqueueAsync(name: string, payload: unknown, options: { idempotencyKey?: string; reqId?: string | null } = {}): Promise<{ id: string; duplicate: boolean }> {
    const started = Date.now()
    for (;;) {
      const step = this.step(name, payload, options, started)
      if ('result' in step) return step.result
      await sleep(step.waitMs)
    }
  }

  private step(name: string, payload: unknown, options: { idempotencyKey?: string; reqId?: string | null }, started: number): Step {
    const now = new Date().toISOString()
    const record = (id: string, keyFile?: string): TaskRecord => ({
      id, name, payload, state: 'queued', attempts: 0, reqId: options.reqId ?? null, createdAt: now, updatedAt: now, notBefore: 0,
      ...(keyFile !== undefined ? { keyFile } : {}),
    })
    if (options.idempotencyKey === undefined) {
      const id = newTaskId()
      this.write('queued', record(id))
      return { result: { id, duplicate: false } }
    }
    const key = options.idempotencyKey
    const keyFile = createHash('sha256').update(`${name}\0${key}`).digest('hex').slice(0, 32)
    const keyPath = join(this.dir, 'keys', keyFile)
    const mine: KeyOwner = { id: newTaskId(), pid: process.pid, host: hostname(), at: Date.now() }
    if (this.createKey(keyPath, mine)) return this.writeKeyed(keyPath, mine, record(mine.id, keyFile))
    const held = this.readKey(keyPath, keyFile)
    if (held === null) return { waitMs: 0 } // removed meanwhile (pruned, or a failed enqueue cleaned up): try again
    const task = this.get(held.id)
    if (task !== null) {
      // Compared as stored: through JSON (undefined members dropped), object keys in any order.
      if (canonical(task.payload ?? null) !== canonical(JSON.parse(canonical(payload ?? null)!) as unknown)) {
        throw new ForkyardError(codes.TASK_KEY_CONFLICT, `Idempotency key ${JSON.stringify(key)} of task ${JSON.stringify(name)} was already used with a different payload (task ${held.id}): the payload differs, so this is not a retry of that task; use a new key for new work`)
      }
      return { result: { id: held.id, duplicate: true } }
    }
    // The key is taken and its task is not there (yet): its writer is between the two writes, or
    // died there. An enqueue that died never answered anyone, so its key must not swallow the task.
    // An empty key file (pid 0) was written by an earlier version, which wrote its task right after.
    const dead = held.pid === 0 ? Date.now() - held.at > 1000 : held.host === hostname() && (held.pid === process.pid || !isAlive(held.pid))
    if (!dead && Date.now() - held.at < KEY_STALE_MS) return { waitMs: Math.min(50, 1 + (Date.now() - started) / 4) }
    // Take over this generation of the key: one taker wins the marker (O_EXCL), writes a new
    // generation of the key (same id) and then the task. Others wait for it like for any writer.
    const marker = `${keyPath}.${held.pid}.${held.at}.takeover`
    try {
      closeSync(openSync(marker, 'wx', 0o600))
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
      // A taker killed while holding the marker must not block the key forever.
      try {
        if (Date.now() - statSync(marker).mtimeMs > KEY_STALE_MS) unlinkSync(marker)
      } catch {
        // removed by its taker meanwhile
      }
      return { waitMs: 5 }
    }
    try {
      const again = this.readKey(keyPath, keyFile)
      if (again === null || again.pid !== held.pid || again.at !== held.at || this.get(held.id) !== null) return { waitMs: 0 }
      const taker: KeyOwner = { id: held.id, pid: process.pid, host: hostname(), at: Date.now() }
      this.replaceKey(keyPath, taker)
      return this.writeKeyed(keyPath, taker, record(held.id, keyFile))
    } finally {
      try {
        unlinkSync(marker)
      } catch {
        // gone already
      }
    }
  }

  /** Writes the task of a key this call owns; a write that throws releases the key. */
  private writeKeyed(keyPath: string, owner: KeyOwner, r: TaskRecord): Step {
    try {
      this.write('queued', r)
    } catch (err) {
      const held = this.readKey(keyPath, '')
      if (held !== null && held.pid === owner.pid && held.at === owner.at) {
        try {
          unlinkSync(keyPath)
        } catch {
          // a kill between the two: the next enqueue of the key takes it over
        }
      }
      throw err
    }
    return { result: { id: owner.id, duplicate: false } }
  }

  /** Creates the key file whole, or returns false when it exists. */
  private createKey(keyPath: string, owner: KeyOwner): boolean {
    const tmp = join(this.dir, 'tmp', `key.${owner.id}.${process.pid}`)
    writeDurable(tmp, JSON.stringify(owner))
    try {
      linkSync(tmp, keyPath)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
      throw err
    } finally {
      unlinkSync(tmp)
    }
    fsyncDir(join(this.dir, 'keys'))
    return true
  }

  private replaceKey(keyPath: string, owner: KeyOwner): void {
    const tmp = join(this.dir, 'tmp', `key.${owner.id}.${process.pid}`)
    writeDurable(tmp, JSON.stringify(owner))
    renameSync(tmp, keyPath)
    fsyncDir(join(this.dir, 'keys'))
  }

  /** The key's owner; null when there is no key file. An empty file is a key of an earlier version: its task id was the key's hash. */
  private readKey(keyPath: string, keyFile: string): KeyOwner | null {
    let text: string
    try {
      text = readFileSync(keyPath, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    try {
      const k = JSON.parse(text) as KeyOwner
      if (typeof k.id === 'string' && typeof k.pid === 'number' && typeof k.at === 'number') return k
    } catch {
      // an earlier version's empty key file
    }
    let at = 0
    try {
      at = statSync(keyPath).mtimeMs
    } catch {
      return null
    }
    return { id: keyFile, pid: 0, host: '', at }
  }

  get(id: string): TaskRecord | null {
    if (!/^[0-9a-f]{32}$/.test(id)) return null
    for (const state of STATES) {
      try {
        return JSON.parse(readFileSync(join(this.dir, state, `${id}.json`), 'utf8')) as TaskRecord
      } catch {
        // not in this state
      }
    }
    return null
  }

  /**
   * The most recent tasks, newest first (by creation), optionally of one name, in some states,
   * older than a cursor. Lists the directories (names only) and reads task files newest first
   * until the page is full, at most LIST_MAX files per call: a name that is rare among many tasks
   * gives a short page with a `next` to continue from.
   */
  page(options: PageOptions = {}): TaskPage {
    const limit = Math.max(1, Math.min(LIST_MAX, Math.floor(options.limit ?? 50)))
    const states = options.state === undefined ? STATES : Array.isArray(options.state) ? options.state : [options.state]
    const entries = this.entries(states).filter((e) => options.before === undefined || e.key < options.before)
    entries.sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0))
    const tasks: TaskRecord[] = []
    const seen = new Set<string>()
    let read = 0
    let lastKey: string | null = null
    for (const e of entries) {
      if (seen.has(e.id)) continue
      if (tasks.length >= limit || read >= LIST_MAX) return { tasks, next: lastKey }
      seen.add(e.id)
      read++
      lastKey = e.key
      let r: TaskRecord | null
      try {
        r = JSON.parse(readFileSync(join(this.dir, e.state, `${e.id}.json`), 'utf8')) as TaskRecord
      } catch {
        r = this.get(e.id) // moved to another state since the listing
      }
      if (r !== null && states.includes(r.state) && (options.name === undefined || r.name === options.name)) tasks.push(r)
    }
    return { tasks, next: null }
  }

  /** The first page of page(): the most recent tasks, newest first, optionally of one name. */
  list(limit: number, name?: string, options: Omit<PageOptions, 'limit' | 'name'> = {}): TaskRecord[] {
    return this.page({ ...options, limit, ...(name !== undefined ? { name } : {}) }).tasks
  }

  /**
   * Removes finished (done, failed) tasks that finished longer than maxAgeMs ago, and all but the
   * maxCount most recent ones (0 = no limit), with their idempotency keys: a key is remembered
   * as long as its task is kept. Reads only the files it removes (and stats the ones created
   * before the age limit). For the jobs process, not for request handlers.
   */
  prune(options: { maxAgeMs: number; maxCount: number; now?: number }): number {
    const now = options.now ?? Date.now()
    const entries = this.entries(['done', 'failed'])
    entries.sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0))
    let removed = 0
    entries.forEach((e, i) => {
      const file = join(this.dir, e.state, `${e.id}.json`)
      let remove = options.maxCount > 0 && i >= options.maxCount
      // A task created within the age limit finished within it too: no need to look at it.
      if (!remove && options.maxAgeMs > 0 && e.createdMs < now - options.maxAgeMs) {
        try {
          remove = statSync(file).mtimeMs < now - options.maxAgeMs
        } catch {
          // gone
        }
      }
      if (remove && this.removeFinished(file, e.id)) removed++
    })
    return removed
  }

  private removeFinished(file: string, id: string): boolean {
    let r: TaskRecord | null = null
    try {
      r = JSON.parse(readFileSync(file, 'utf8')) as TaskRecord
    } catch {
      // unreadable: removed all the same
    }
    // The key first: an enqueue of the same key meanwhile makes a new task rather than find none.
    // Earlier versions named a keyed task after its key file.
    const keyFile = r?.keyFile ?? (timeOfId(id) === null ? id : undefined)
    if (keyFile !== undefined && /^[0-9a-f]{32}$/.test(keyFile)) {
      const keyPath = join(this.dir, 'keys', keyFile)
      if (this.readKey(keyPath, keyFile)?.id === id) {
        try {
          unlinkSync(keyPath)
        } catch {
          // gone
        }
      }
    }
    try {
      unlinkSync(file)
      return true
    } catch {
      return false
    }
  }

  /**
   * Task files of some states with a sort key that orders them by creation time, from names only:
   * the id itself for time-ordered ids; for ids of earlier versions (random), the file's mtime in
   * front of it (those files predate every time-ordered id).
   */
  private entries(states: TaskState[]): { state: TaskState; id: string; key: string; createdMs: number }[] {
    const out: { state: TaskState; id: string; key: string; createdMs: number }[] = []
    for (const state of states) {
      for (const f of readdirSync(join(this.dir, state))) {
        if (!f.endsWith('.json') || f.length !== 37) continue
        const id = f.slice(0, 32)
        const t = timeOfId(id)
        if (t !== null) {
          out.push({ state, id, key: id, createdMs: t })
          continue
        }
        let mtime = 0
        try {
          mtime = Math.floor(statSync(join(this.dir, state, f)).mtimeMs)
        } catch {
          continue
        }
        out.push({ state, id, key: `${mtime.toString(16).padStart(12, '0')}0${id}`, createdMs: mtime })
      }
    }
    return out
  }

  /** Queued tasks whose time has come, oldest first. */
  /**
   * Queued tasks due by `now`, oldest first. The runner asks every 100 ms: the queue is read again
   * only when queued/ changed (every enqueue, retry and claim renames a file in or out of it, which
   * changes the directory's mtime) and at least once a second (mtimes are coarse: two changes in
   * one tick), not every file on every poll.
   */
  ready(now: number, limit: number): TaskRecord[] {
    const dir = join(this.dir, 'queued')
    const mtimeMs = statSync(dir).mtimeMs
    if (this.queuedScan === null || this.queuedScan.mtimeMs !== mtimeMs || now - this.queuedScan.at >= 1000) {
      const records: TaskRecord[] = []
      for (const f of readdirSync(dir)) {
        if (!f.endsWith('.json')) continue
        try {
          records.push(JSON.parse(readFileSync(join(dir, f), 'utf8')) as TaskRecord)
        } catch {
          // being renamed away
        }
      }
      records.sort((a, b) => a.createdAt.localeCompare(b.createdAt))
      this.queuedScan = { mtimeMs, at: now, records }
    }
    const out: TaskRecord[] = []
    for (const r of this.queuedScan.records) {
      if (out.length >= limit) break
      if (r.notBefore <= now) out.push(r)
    }
    return out
  }

  /** Atomically takes a queued task; null when someone else took it first. */
  claim(r: TaskRecord): TaskRecord | null {
    try {
      renameSync(join(this.dir, 'queued', `${r.id}.json`), join(this.dir, 'running', `${r.id}.json`))
    } catch {
      return null
    }
    const running: TaskRecord = { ...r, state: 'running', attempts: r.attempts + 1, updatedAt: new Date().toISOString() }
    this.write('running', running)
    return running
  }

  /** Moves a task to its next state (the new record is durable before the old one is removed). */
  move(r: TaskRecord, to: TaskState, fields: Partial<TaskRecord>): TaskRecord {
    const next: TaskRecord = { ...r, ...fields, state: to, updatedAt: new Date().toISOString() }
    this.write(to, next)
    if (r.state !== to) {
      try {
        unlinkSync(join(this.dir, r.state, `${r.id}.json`))
      } catch {
        // already gone
      }
    }
    return next
  }

  /** Tasks left in running/ by a process that died: back to queued/. */
  recoverInterrupted(): TaskRecord[] {
    const out: TaskRecord[] = []
    for (const f of readdirSync(join(this.dir, 'running'))) {
      if (!f.endsWith('.json')) continue
      try {
        const r = JSON.parse(readFileSync(join(this.dir, 'running', f), 'utf8')) as TaskRecord
        out.push(this.move(r, 'queued', { error: 'interrupted: the jobs process stopped during this attempt' }))
      } catch {
        // unreadable: leave it for a human
      }
    }
    return out
  }

  /**
   * Tasks per state, from directory listings (no task file is read). done/ and failed/, the large
   * ones, are listed again only when the directory changed (its mtime) or every 10 s.
   */
  counts(): Record<TaskState, number> {
    const c = {} as Record<TaskState, number>
    const now = Date.now()
    for (const s of STATES) {
      const dir = join(this.dir, s)
      if (s === 'done' || s === 'failed') {
        const mtimeMs = statSync(dir).mtimeMs
        const cached = this.countCache.get(s)
        if (cached !== undefined && cached.mtimeMs === mtimeMs && now - cached.at < 10_000) {
          c[s] = cached.n
          continue
        }
        c[s] = readdirSync(dir).filter((f) => f.endsWith('.json')).length
        this.countCache.set(s, { mtimeMs, at: now, n: c[s] })
        continue
      }
      c[s] = readdirSync(dir).filter((f) => f.endsWith('.json')).length
    }
    return c
  }

  private write(state: TaskState, r: TaskRecord): void {
    const tmp = join(this.dir, 'tmp', `${r.id}.${process.pid}.json`)
    writeDurable(tmp, JSON.stringify(r))
    renameSync(tmp, join(this.dir, state, `${r.id}.json`))
    fsyncDir(join(this.dir, state))
  }
}
