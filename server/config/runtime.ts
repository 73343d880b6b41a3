/**
 * `config` for app code: the current value of any .env key in this process, typed when the app
 * schema declares it, with change notifications. In workers it follows the arbiter (which watches
 * .env and validates first); in the push, bridge and jobs processes, their own watcher.
 */
import { EventEmitter } from 'node:events'
import { processGlobal } from '../process-global.js'

export interface ConfigEvent {
  version: string
  changed: string[]
}

class RuntimeConfig extends EventEmitter<{ change: [ConfigEvent] }> {
  private typed: Record<string, unknown> = {}
  version = ''

  /** The value of `key`: typed per the app schema (int, bool, duration in ms...) or the raw string. */
  get<T = string>(key: string): T | undefined {
    if (key in this.typed) return this.typed[key] as T
    return process.env[key] as T | undefined
  }

  /** Calls `fn` after every applied change; returns a function that stops it. */
  onChange(fn: (e: ConfigEvent) => void): () => void {
    this.on('change', fn)
    return () => this.off('change', fn)
  }

  /** Internal: installs a new validated version. */
  apply(version: string, env: Record<string, string | null>, typed: Record<string, unknown>, changed: string[]): void {
    for (const [k, v] of Object.entries(env)) {
      if (v === null) delete process.env[k]
      else process.env[k] = v
    }
    this.typed = typed
    const first = this.version === ''
    this.version = version
    if (!first && changed.length > 0) this.emit('change', { version, changed })
  }
}

/** One per process, shared by every copy of the package (server/process-global.ts). */
export const config: RuntimeConfig = processGlobal('config', () => new RuntimeConfig())
