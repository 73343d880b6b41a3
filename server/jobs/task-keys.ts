/**
 * The idempotency-key index of the file-backed queue: one file per key in keys/, named by a hash of
 * the task name and key, holding who owns the key (the task id, pid, host, time). A key file is
 * created whole and exclusively (written in tmp/, then link(): one creator wins), its task written
 * after it; a key whose task never came (its writer died between the two writes) is taken over.
 * enqueueKeyed() is one attempt of an enqueue with a key; the caller retries after waitMs.
 */
import { createHash } from 'node:crypto'
import { closeSync, linkSync, openSync, readFileSync, renameSync, statSync, unlinkSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { ForkyardError, codes } from '../errors.js'
import { isAlive } from '../process/pidfile.js'
import { canonical, fsyncDir, newTaskId, readTask, writeDurable, writeRecord, type TaskRecord } from './task-record.js'

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

/** One attempt of an enqueue: its result, or how long to wait before the next attempt. */
export type Step = { result: { id: string; duplicate: boolean } } | { waitMs: number }

/**
 * One attempt to enqueue a task with an idempotency key in the queue at `dir`. `record` makes the
 * queued record for an id (and the key file to remember in it); `started` is when the enqueue began.
 */
export function enqueueKeyed(dir: string, name: string, key: string, payload: unknown, record: (id: string, keyFile: string) => TaskRecord, started: number): Step {
  const keyFile = createHash('sha256').update(`${name}\0${key}`).digest('hex').slice(0, 32)
  const keyPath = join(dir, 'keys', keyFile)
  const mine: KeyOwner = { id: newTaskId(), pid: process.pid, host: hostname(), at: Date.now() }
  if (createKey(dir, keyPath, mine)) return writeKeyed(dir, keyPath, mine, record(mine.id, keyFile))
  const held = readKey(keyPath, keyFile)
  if (held === null) return { waitMs: 0 } // removed meanwhile (pruned, or a failed enqueue cleaned up): try again
  const task = readTask(dir, held.id)
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
    const again = readKey(keyPath, keyFile)
    if (again === null || again.pid !== held.pid || again.at !== held.at || readTask(dir, held.id) !== null) return { waitMs: 0 }
    const taker: KeyOwner = { id: held.id, pid: process.pid, host: hostname(), at: Date.now() }
    replaceKey(dir, keyPath, taker)
    return writeKeyed(dir, keyPath, taker, record(held.id, keyFile))
  } finally {
    try {
      unlinkSync(marker)
    } catch {
      // gone already
    }
  }
}

/** Removes the key file `keyFile` if it still belongs to task `id` (an enqueue meanwhile may own a new one). */
export function removeKey(dir: string, keyFile: string, id: string): void {
  const keyPath = join(dir, 'keys', keyFile)
  if (readKey(keyPath, keyFile)?.id === id) {
    try {
      unlinkSync(keyPath)
    } catch {
      // gone
    }
  }
}

/** Writes the task of a key this call owns; a write that throws releases the key. */
function writeKeyed(dir: string, keyPath: string, owner: KeyOwner, r: TaskRecord): Step {
  try {
    writeRecord(dir, 'queued', r)
  } catch (err) {
    const held = readKey(keyPath, '')
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
function createKey(dir: string, keyPath: string, owner: KeyOwner): boolean {
  const tmp = join(dir, 'tmp', `key.${owner.id}.${process.pid}`)
  writeDurable(tmp, JSON.stringify(owner))
  try {
    linkSync(tmp, keyPath)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  } finally {
    unlinkSync(tmp)
  }
  fsyncDir(join(dir, 'keys'))
  return true
}

function replaceKey(dir: string, keyPath: string, owner: KeyOwner): void {
  const tmp = join(dir, 'tmp', `key.${owner.id}.${process.pid}`)
  writeDurable(tmp, JSON.stringify(owner))
  renameSync(tmp, keyPath)
  fsyncDir(join(dir, 'keys'))
}

/** The key's owner; null when there is no key file. An empty file is a key of an earlier version: its task id was the key's hash. */
function readKey(keyPath: string, keyFile: string): KeyOwner | null {
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
