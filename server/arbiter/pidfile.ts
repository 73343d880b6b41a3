/** The arbiter's pidfile: refuses to start over a live arbiter, replaces a stale file. */
import { readFileSync, unlinkSync, writeFileSync } from 'node:fs'
import { ForkyardError, codes } from '../errors.js'

export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
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

export function writePidfile(path: string): void {
  const existing = readPid(path)
  if (existing !== null && existing !== process.pid && isAlive(existing)) {
    throw new ForkyardError(codes.ALREADY_RUNNING, `Another forkyard arbiter (pid ${existing}) already runs with pidfile ${path}; stop it first or set FORKYARD_PIDFILE`)
  }
  writeFileSync(path, `${process.pid}\n`, { mode: 0o644 })
}

export function removePidfile(path: string): void {
  if (readPid(path) !== process.pid) return
  try {
    unlinkSync(path)
  } catch {
    // already gone
  }
}
