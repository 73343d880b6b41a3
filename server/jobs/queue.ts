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
 * This file holds TaskQueue: enqueue, and the runner's side (due tasks, claim, move, recovery,
 * counts). The record format and durable writes are in task-record.ts, the idempotency-key index
 * in task-keys.ts, paged listing and retention in task-listing.ts; their public names are
 * re-exported here.
 */
import { mkdirSync, readdirSync, renameSync, statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { enqueueKeyed, type Step } from './task-keys.js'
import { listPage, pruneFinished, type PageOptions, type TaskPage } from './task-listing.js'
import { STATES, newTaskId, readRecord, readTask, writeRecord, type TaskRecord, type TaskState } from './task-record.js'

export { KEY_STALE_MS } from './task-keys.js'
export { LIST_MAX, type PageOptions, type TaskPage } from './task-listing.js'
export { canonical, newTaskId, timeOfId, type TaskRecord, type TaskState } from './task-record.js'

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
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
      writeRecord(this.dir, 'queued', record(id))
      return { result: { id, duplicate: false } }
    }
    return enqueueKeyed(this.dir, name, options.idempotencyKey, payload, record, started)
  }

  get(id: string): TaskRecord | null {
    return readTask(this.dir, id)
  }

  /**
   * The most recent tasks, newest first (by creation), optionally of one name, in some states,
   * older than a cursor. Lists the directories (names only) and reads task files newest first
   * until the page is full, at most LIST_MAX files per call: a name that is rare among many tasks
   * gives a short page with a `next` to continue from.
   */
  page(options: PageOptions = {}): TaskPage {
    return listPage(this.dir, options)
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
    return pruneFinished(this.dir, options)
  }

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
          records.push(readRecord(join(dir, f)))
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
    writeRecord(this.dir, 'running', running)
    return running
  }

  /** Moves a task to its next state (the new record is durable before the old one is removed). */
  move(r: TaskRecord, to: TaskState, fields: Partial<TaskRecord>): TaskRecord {
    const next: TaskRecord = { ...r, ...fields, state: to, updatedAt: new Date().toISOString() }
    writeRecord(this.dir, to, next)
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
        const r = readRecord(join(this.dir, 'running', f))
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
}
