/**
 * Listing and retention of the file-backed queue, from directory listings sorted by name: task ids
 * are time-ordered, so name order is creation order and page() and prune() read no more task
 * files than they return or remove. Files of earlier versions (random ids) sort by their mtime.
 */
import { readdirSync, statSync, unlinkSync } from 'node:fs'
import { join } from 'node:path'
import { removeKey } from './task-keys.js'
import { STATES, readRecord, readTask, timeOfId, type TaskRecord, type TaskState } from './task-record.js'

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

/** Largest page, and most task files one list() call reads (a name filter may skip many). */
export const LIST_MAX = 1000

/** TaskQueue.page() of the queue at `dir`: reads task files newest first, at most LIST_MAX per call. */
export function listPage(dir: string, options: PageOptions = {}): TaskPage {
  const limit = Math.max(1, Math.min(LIST_MAX, Math.floor(options.limit ?? 50)))
  const states = options.state === undefined ? STATES : Array.isArray(options.state) ? options.state : [options.state]
  const entries = listEntries(dir, states).filter((e) => options.before === undefined || e.key < options.before)
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
      r = readRecord(join(dir, e.state, `${e.id}.json`))
    } catch {
      r = readTask(dir, e.id) // moved to another state since the listing
    }
    if (r !== null && states.includes(r.state) && (options.name === undefined || r.name === options.name)) tasks.push(r)
  }
  return { tasks, next: null }
}

/** TaskQueue.prune() of the queue at `dir`: how many finished tasks it removed, with their keys. */
export function pruneFinished(dir: string, options: { maxAgeMs: number; maxCount: number; now?: number }): number {
  const now = options.now ?? Date.now()
  const entries = listEntries(dir, ['done', 'failed'])
  entries.sort((a, b) => (a.key < b.key ? 1 : a.key > b.key ? -1 : 0))
  let removed = 0
  entries.forEach((e, i) => {
    const file = join(dir, e.state, `${e.id}.json`)
    let remove = options.maxCount > 0 && i >= options.maxCount
    // A task created within the age limit finished within it too: no need to look at it.
    if (!remove && options.maxAgeMs > 0 && e.createdMs < now - options.maxAgeMs) {
      try {
        remove = statSync(file).mtimeMs < now - options.maxAgeMs
      } catch {
        // gone
      }
    }
    if (remove && removeFinished(dir, file, e.id)) removed++
  })
  return removed
}

function removeFinished(dir: string, file: string, id: string): boolean {
  let r: TaskRecord | null = null
  try {
    r = readRecord(file)
  } catch {
    // unreadable: removed all the same
  }
  // The key first: an enqueue of the same key meanwhile makes a new task rather than find none.
  // Earlier versions named a keyed task after its key file.
  const keyFile = r?.keyFile ?? (timeOfId(id) === null ? id : undefined)
  if (keyFile !== undefined && /^[0-9a-f]{32}$/.test(keyFile)) removeKey(dir, keyFile, id)
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
function listEntries(dir: string, states: TaskState[]): { state: TaskState; id: string; key: string; createdMs: number }[] {
  const out: { state: TaskState; id: string; key: string; createdMs: number }[] = []
  for (const state of states) {
    for (const f of readdirSync(join(dir, state))) {
      if (!f.endsWith('.json') || f.length !== 37) continue
      const id = f.slice(0, 32)
      const t = timeOfId(id)
      if (t !== null) {
        out.push({ state, id, key: id, createdMs: t })
        continue
      }
      let mtime = 0
      try {
        mtime = Math.floor(statSync(join(dir, state, f)).mtimeMs)
      } catch {
        continue
      }
      out.push({ state, id, key: `${mtime.toString(16).padStart(12, '0')}0${id}`, createdMs: mtime })
    }
  }
  return out
}
