/**
 * Unix-socket binds: make the parent directory, and remove a stale socket file left by a process
 * that died (connect refused), but refuse to steal one that still answers.
 */
import { existsSync, mkdirSync, unlinkSync } from 'node:fs'
import { createConnection } from 'node:net'
import { dirname } from 'node:path'
import type { BindAddress } from '../config/parse.js'
import { ForkyardError, codes } from '../errors.js'

export async function prepareBinds(binds: BindAddress[]): Promise<void> {
  for (const bind of binds) {
    if (bind.kind !== 'unix') continue
    mkdirSync(dirname(bind.path), { recursive: true })
    if (!existsSync(bind.path)) continue
    const live = await new Promise<boolean>((resolve) => {
      const socket = createConnection(bind.path)
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (live) throw new ForkyardError(codes.BIND, `Cannot listen on ${bind.text}: another process is accepting connections on it`)
    unlinkSync(bind.path)
  }
}
