/**
 * Pidfiles: a file holding the pid of the one process allowed to run something on this host (the
 * arbiter, each singleton). A file naming a live process other than this one refuses the claim; a
 * stale file (its process is gone, or the file is empty or garbled) is taken over. Only the
 * process named in the file removes it.
 */
import { existsSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { ForkyardError, codes } from '../errors.js'

/**
 * The process exists and has not exited. A zombie (exited, not yet reaped by its parent: after a
 * kill -9 of supervisord, init reaps it 1-2 s late) answers kill(pid, 0) but is dead.
 */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  const st = procStat(pid)
  // No /proc (not Linux): what kill(0) said; gone meanwhile: dead.
  if (st === null) return !existsSync('/proc/self')
  return st.state !== 'Z'
}

/** State, parent and process group from /proc/<pid>/stat (the name in parentheses may hold spaces). */
export function procStat(pid: number): { state: string; ppid: number; pgrp: number } | null {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'utf8')
    const fields = text.slice(text.lastIndexOf(')') + 2).split(' ')
    return { state: fields[0] ?? '', ppid: Number(fields[1]), pgrp: Number(fields[2]) }
  } catch {
    return null
  }
}

export function readPid(path: string): number | null {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim())
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

/** Writes this process's pid to `path` and returns null, or returns the pid of the live process that holds it. */
export function claimPidfile(path: string): number | null {
  const existing = readPid(path)
  if (existing !== null && existing !== process.pid && isAlive(existing)) return existing
  writeFileSync(path, `${process.pid}\n`, { mode: 0o644 })
  return null
}

/** The arbiter's pidfile: refuses to start over a live arbiter, replaces a stale file. */
export function writePidfile(path: string): void {
  const existing = claimPidfile(path)
  if (existing !== null) {
    throw new ForkyardError(codes.ALREADY_RUNNING, `Another forkyard arbiter (pid ${existing}) already runs with pidfile ${path}; stop it first or set FORKYARD_PIDFILE`)
  }
}

export function removePidfile(path: string): void {
  if (readPid(path) !== process.pid) return
  try {
    unlinkSync(path)
  } catch {
    // already gone
  }
}
