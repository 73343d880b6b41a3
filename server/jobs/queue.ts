/**
 * The durable task queue: one JSON file per task, moved between directories by rename, the way a
 * maildir works. A task is written to tmp/, fsync'ed, renamed into queued/ and the directory
 * fsync'ed before enqueue() resolves, so a kill -9 of anything right after loses nothing. Claiming
 * is a rename into running/ (atomic: one claimer wins); what is found in running/ at start was
 * interrupted and goes back to queued/. Idempotency keys are files created exclusively (O_EXCL).
 * No library: better-sqlite3 needs a native build here and node:sqlite does not exist on Node 20;
 * rename and O_EXCL on one local filesystem give the guarantees needed.
 */
import { createHash, randomUUID } from 'node:crypto'
import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, unlinkSync, writeSync } from 'node:fs'
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
}

const STATES: TaskState[] = ['queued', 'running', 'done', 'failed']

export class TaskQueue {
  constructor(readonly dir: string) {
    for (const d of [...STATES, 'tmp', 'keys']) mkdirSync(join(dir, d), { recursive: true, mode: 0o700 })
  }

  /** Durable before it returns. With an idempotency key, the same key gives the same task once. */
  enqueue(name: string, payload: unknown, options: { idempotencyKey?: string; reqId?: string | null } = {}): { id: string; duplicate: boolean } {
    let id: string
    if (options.idempotencyKey !== undefined) {
      id = createHash('sha256').update(`${name}\0${options.idempotencyKey}`).digest('hex').slice(0, 32)
      try {
        closeSync(openSync(join(this.dir, 'keys', id), 'wx', 0o600))
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
        // A key whose task exists is a duplicate. A key without one was left by an enqueue that
        // failed (or was killed) before writing its task: that enqueue never answered, so this
        // one writes the task (the same id: a concurrent twin writes the same file).
        if (this.get(id) !== null) return { id, duplicate: true }
      }
    } else {
      id = randomUUID().replaceAll('-', '')
    }
    const now = new Date().toISOString()
    this.write('queued', { id, name, payload, state: 'queued', attempts: 0, reqId: options.reqId ?? null, createdAt: now, updatedAt: now, notBefore: 0 })
    return { id, duplicate: false }
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

  /** The most recent tasks (all states), newest first, optionally of one name. */
  list(limit: number, name?: string): TaskRecord[] {
    const out: TaskRecord[] = []
    for (const state of STATES) {
      for (const f of readdirSync(join(this.dir, state))) {
        if (!f.endsWith('.json')) continue
        try {
          const r = JSON.parse(readFileSync(join(this.dir, state, f), 'utf8')) as TaskRecord
          if (name === undefined || r.name === name) out.push(r)
        } catch {
          // moving between states
        }
      }
    }
    const seen = new Set<string>()
    return out
      .sort((a, b) => b.createdAt.localeCompare(a.createdAt))
      .filter((r) => !seen.has(r.id) && seen.add(r.id) !== undefined)
      .slice(0, limit)
  }

  /** Queued tasks whose time has come, oldest first. */
  ready(now: number, limit: number): TaskRecord[] {
    const out: TaskRecord[] = []
    for (const f of readdirSync(join(this.dir, 'queued'))) {
      if (!f.endsWith('.json')) continue
      try {
        const r = JSON.parse(readFileSync(join(this.dir, 'queued', f), 'utf8')) as TaskRecord
        if (r.notBefore <= now) out.push(r)
      } catch {
        // being renamed away
      }
    }
    out.sort((a, b) => a.createdAt.localeCompare(b.createdAt))
    return out.slice(0, limit)
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

  counts(): Record<TaskState, number> {
    const c = {} as Record<TaskState, number>
    for (const s of STATES) c[s] = readdirSync(join(this.dir, s)).filter((f) => f.endsWith('.json')).length
    return c
  }

  private write(state: TaskState, r: TaskRecord): void {
    const tmp = join(this.dir, 'tmp', `${r.id}.${process.pid}.json`)
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, JSON.stringify(r))
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, join(this.dir, state, `${r.id}.json`))
    const dirFd = openSync(join(this.dir, state), 'r')
    try {
      fsyncSync(dirFd)
    } finally {
      closeSync(dirFd)
    }
  }
}
