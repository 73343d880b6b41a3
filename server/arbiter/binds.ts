/**
 * Unix-socket binds: make the parent directory and remove a stale socket file left by a process
 * that died (connect refused). One that still answers belongs to workers of an arbiter that died
 * (the pidfile check has refused a live arbiter before this): it is left serving, and taken over
 * once this arbiter's workers are ready (arbiter/handover.ts). Returns those paths.
 */
import { existsSync, mkdirSync, rmSync, unlinkSync } from 'node:fs'
import { createConnection } from 'node:net'
import { dirname } from 'node:path'
import type { BindAddress } from '../config/parse.js'
import { ForkyardError, codes } from '../errors.js'
import { listenPath } from './handover.js'

export async function prepareBinds(binds: BindAddress[]): Promise<string[]> {
  const live: string[] = []
  for (const bind of binds) {
    if (bind.kind !== 'unix') continue
    mkdirSync(dirname(bind.path), { recursive: true })
    // This arbiter's own name, left by an earlier process with the same pid.
    const own = listenPath(bind.path, process.pid)
    if (own !== bind.path) rmSync(own, { force: true })
    if (!existsSync(bind.path)) continue
    const answers = await new Promise<boolean>((resolve) => {
      const socket = createConnection(bind.path)
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (!answers) unlinkSync(bind.path)
    else if (own !== bind.path) live.push(bind.path)
    else throw new ForkyardError(codes.BIND, `Cannot listen on ${bind.text}: another process is accepting connections on it (and the path is too long to take it over)`)
  }
  return live
}
