/**
 * Watches the .env file (stat polling every 200 ms: it survives editors that replace the file and
 * Docker bind mounts, where inotify events do not cross) and re-evaluates it on every change or on
 * demand (SIGHUP). Emits 'change' for a valid new version, logs and keeps the last good one otherwise.
 */
import { EventEmitter } from 'node:events'
import { existsSync, unwatchFile, watchFile } from 'node:fs'
import type { Logger } from 'pino'
import { loadAppSchema, type AppSchema } from './app-schema.js'
import { evaluate, isSecret, readEnvFile, type EnvSnapshot } from './env-file.js'

function safeSchema(path: string | undefined): AppSchema {
  try {
    return loadAppSchema(path ?? '')
  } catch {
    return {}
  }
}

export interface ConfigChange {
  next: EnvSnapshot
  changed: string[]
  restart: string[]
}

export class EnvWatcher extends EventEmitter<{ change: [ConfigChange] }> {
  private watching = false
  private settle: NodeJS.Timeout | null = null

  constructor(
    readonly path: string,
    private readonly base: NodeJS.ProcessEnv,
    public current: EnvSnapshot,
    private readonly log: Logger,
  ) {
    super()
  }

  start(): void {
    if (this.watching) return
    this.watching = true
    // A write in progress (truncate, then write) must not be read half-way: wait until the file has
    // been still for 100 ms. Polling 200 ms + 100 ms keeps a change well within a second.
    watchFile(this.path, { interval: 200, persistent: false }, () => {
      if (this.settle !== null) clearTimeout(this.settle)
      this.settle = setTimeout(() => {
        this.settle = null
        this.check('file changed')
      }, 100)
    })
  }

  /** Re-reads the file now; returns true when a new configuration was applied. */
  check(why: string): boolean {
    if (!existsSync(this.path)) {
      this.log.warn({ file: this.path, why }, 'config file missing: keeping the last good configuration')
      return false
    }
    let file: Record<string, string>
    try {
      file = readEnvFile(this.path)
    } catch (err) {
      this.log.error({ err, file: this.path }, 'config file unreadable: keeping the last good configuration')
      return false
    }
    const result = evaluate(this.current, this.base, file)
    if (!result.ok) {
      // The parser's message quotes the rejected value: hide it when the key is a secret.
      let message = result.error.message
      const schema = { ...this.current.appSchema, ...safeSchema(file.FORKYARD_APP_SCHEMA) }
      for (const [k, v] of Object.entries(file)) if (v !== '' && isSecret(k, schema)) message = message.split(JSON.stringify(v)).join('"(secret)"').split(v).join('(secret)')
      this.log.error({ file: this.path, version: this.current.version, error: message }, `config change refused: ${message}; the last good configuration stays in force`)
      return false
    }
    if (result.pinned.length > 0) this.log.warn({ keys: result.pinned }, 'set in the process environment, which wins over the .env file: not changed')
    if (result.changed.length === 0) return false
    const shown: Record<string, string | null> = {}
    for (const k of result.changed) shown[k] = isSecret(k, result.next.appSchema) ? '(secret)' : (result.next.env[k] ?? null)
    this.log.info({ file: this.path, from: this.current.version, version: result.next.version, changed: shown, restart: result.restart }, 'config changed')
    this.current = result.next
    this.emit('change', { next: result.next, changed: result.changed, restart: result.restart })
    return true
  }

  close(): void {
    if (this.settle !== null) clearTimeout(this.settle)
    if (this.watching) unwatchFile(this.path)
    this.watching = false
  }
}
