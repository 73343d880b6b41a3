/**
 * The settings in force in this process, one frozen object replaced whole on every change, and
 * `config` for app code: the current value of any .env key, typed when the app schema declares it,
 * with change notifications. Workers and the jobs process get it from the arbiter (which watches
 * .env and validates first) at start and on every change; push, bridge and the nginx wrapper from
 * their own watcher. The kit's own readers (publish(), tasks, offload(), pushToken()) take it from
 * here, never from process.env, which a process only sets once at start for the app's own reads.
 */
import { EventEmitter } from 'node:events'
import { processGlobal } from '../process-global.js'

export interface ConfigEvent {
  version: string
  changed: string[]
}

class RuntimeConfig extends EventEmitter<{ change: [ConfigEvent] }> {
  private typed: Record<string, unknown> = {}
  private env: Readonly<Record<string, string>> | null = null
  version = ''

  /** The value of `key`: typed per the app schema (int, bool, duration in ms...) or the raw string. */
  get<T = string>(key: string): T | undefined {
    if (key in this.typed) return this.typed[key] as T
    return this.settings()[key] as T | undefined
  }

  /**
   * Every variable in force (the environment the process was given plus .env), frozen; the
   * process environment where the kit installed none (serve() or publish() used from code).
   */
  settings(): Readonly<Record<string, string | undefined>> {
    return this.env ?? process.env
  }

  /** Calls `fn` after every applied change; returns a function that stops it. */
  onChange(fn: (e: ConfigEvent) => void): () => void {
    this.on('change', fn)
    return () => this.off('change', fn)
  }

  /** Internal: installs a new validated version, whole. */
  apply(version: string, env: Readonly<Record<string, string>>, typed: Record<string, unknown>, changed: string[]): void {
    this.env = Object.isFrozen(env) ? env : Object.freeze({ ...env })
    this.typed = typed
    const first = this.version === ''
    this.version = version
    if (!first && changed.length > 0) this.emit('change', { version, changed })
  }
}

/** One per process, shared by every copy of the package (server/process-global.ts). */
export const config: RuntimeConfig = processGlobal('config', () => new RuntimeConfig())
