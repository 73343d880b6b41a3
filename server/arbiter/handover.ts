/**
 * The listening Unix socket outlives its arbiter. gunicorn and uWSGI drop requests when their
 * master dies: the workers stop with it, and nothing accepts until a new master has booted new
 * workers. Here the workers of an arbiter killed -9 keep accepting on the socket they hold, and
 * the next arbiter takes over without a gap:
 *
 * 1. Each arbiter's workers listen on `<path>.<arbiter pid>`, a name of this arbiter's own (cluster
 *    workers share one socket per name, created by the arbiter).
 * 2. Once a worker is ready, the arbiter renames that name over `<path>`, atomically: every new
 *    connect(2) reaches the new workers; connections already queued stay with the old socket.
 * 3. Workers whose arbiter disappeared watch `<path>`: when its inode is no longer that of their
 *    socket, a new arbiter took over, and after a short delay (to accept what was queued) they
 *    drain and exit. With no new arbiter within a deadline they drain and exit anyway.
 *
 * The rename also covers a new socket created after every worker died (the arbiter's shared
 * socket closes with the last one). TCP binds cannot be shared by two processes on Node 20
 * (no SO_REUSEPORT in cluster): workers of a dead arbiter drain at once there, as before.
 */
import { existsSync, renameSync, statSync } from 'node:fs'
import type { BindAddress } from '../config/parse.js'

/** sockaddr_un.sun_path holds 108 bytes, the terminating NUL included. */
const MAX_PATH = 107

/** The name this arbiter's workers listen on for a Unix bind (`arbiterPid`: the worker's parent). */
export function listenPath(path: string, arbiterPid: number): string {
  const own = `${path}.${arbiterPid}`
  return Buffer.byteLength(own) <= MAX_PATH ? own : path
}

/** In the arbiter: moves each Unix bind's own socket over its public path; returns the paths moved. */
export function publishSockets(binds: readonly BindAddress[], arbiterPid = process.pid): string[] {
  const moved: string[] = []
  for (const b of binds) {
    if (b.kind !== 'unix') continue
    const own = listenPath(b.path, arbiterPid)
    if (own === b.path || !existsSync(own)) continue
    renameSync(own, b.path)
    moved.push(b.path)
  }
  return moved
}

export function inodeOf(path: string): number | null {
  try {
    return statSync(path).ino
  } catch {
    return null
  }
}

export interface HeldSocket {
  path: string
  ino: number
}

/** In a worker after listening: the inode of each Unix socket it holds, by public path. */
export function heldSockets(binds: readonly BindAddress[], arbiterPid: number): HeldSocket[] {
  const out: HeldSocket[] = []
  for (const b of binds) {
    if (b.kind !== 'unix') continue
    const ino = inodeOf(listenPath(b.path, arbiterPid)) ?? inodeOf(b.path)
    if (ino !== null) out.push({ path: b.path, ino })
  }
  return out
}

/**
 * In a worker whose arbiter is gone: calls `onTakenOver` once every public path names another
 * socket (plus `settleMs`, to accept what was already queued), or `onDeadline` after `deadlineMs`.
 */
export function awaitTakeover(held: HeldSocket[], options: { deadlineMs: number; settleMs: number; onTakenOver: () => void; onDeadline: () => void }): void {
  const until = Date.now() + options.deadlineMs
  const timer = setInterval(() => {
    if (held.every((h) => inodeOf(h.path) !== h.ino)) {
      clearInterval(timer)
      setTimeout(options.onTakenOver, options.settleMs)
    } else if (Date.now() > until) {
      clearInterval(timer)
      options.onDeadline()
    }
  }, 100)
}
