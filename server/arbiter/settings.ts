/**
 * The settings in force in the arbiter: the server configuration, the app module and the settings
 * version, replaced whole by a validated .env change; and what a new child (worker, jobs process)
 * starts with. Which processes a change reaches, and whether it needs a reload, is the arbiter's.
 */
import type { Logger } from 'pino'
import type { ServerConfig } from '../config/schema.js'
import { definedEnv } from '../config/env-file.js'
import { loadConfig, type ConfigOverrides } from '../config/load.js'
import { loadLogConfig } from '../config/logging.js'
import { loadStackConfig } from '../config/stack.js'
import type { ConfigChange, EnvWatcher } from '../config/watch.js'
import type { LineOutput } from '../log/rotating-file.js'
import type { ArbiterMessage, ChildLaunch } from './ipc.js'

/** The arbiter's options (arbiter.ts ArbiterOptions) that settings come from. */
export interface SettingsOptions {
  config: Readonly<ServerConfig>
  /** Watches .env: valid changes are applied live or by a rolling reload. */
  watcher?: EnvWatcher | null
  /** Settings given in code or flags: they keep winning over .env after a change. */
  overrides?: ConfigOverrides
  configVersion?: string
  /** The environment serve() was given (settings when no .env is watched; the children's base). */
  env?: NodeJS.ProcessEnv
  app: string
  /** The app came from FORKYARD_APP (not a command-line argument): a change of it reloads onto the new module. */
  appFromSettings?: boolean
  /** Behind the kit's nginx (under its supervisord), which writes the access log: auto means off. */
  proxied?: boolean
}

/** FORKYARD_ACCESS_LOG=auto decided: the workers log requests unless the kit's nginx does. */
function resolveAccessLog(config: Readonly<ServerConfig>, proxied: boolean): Readonly<ServerConfig> {
  return config.accessLog !== 'auto' ? config : Object.freeze({ ...config, accessLog: !proxied })
}

export class ArbiterSettings {
  config: Readonly<ServerConfig>
  app: string
  version: string
  /** When the version in force changed (readiness gives the processes a moment to follow). */
  since = Date.now()
  private readonly watcher: EnvWatcher | null
  private readonly overrides: ConfigOverrides
  private readonly env: NodeJS.ProcessEnv
  private readonly appFromSettings: boolean
  private readonly proxied: boolean

  constructor(options: SettingsOptions) {
    this.watcher = options.watcher ?? null
    this.overrides = options.overrides ?? {}
    this.env = options.env ?? process.env
    this.appFromSettings = options.appFromSettings ?? false
    this.proxied = options.proxied ?? false
    this.config = resolveAccessLog(options.config, this.proxied)
    this.app = options.app
    this.version = options.configVersion ?? ''
  }

  /**
   * Takes a validated change: the new settings are in force in this process (log level, log file
   * limits); returns the message that tells the children.
   */
  apply(change: ConfigChange, log: Logger, output: LineOutput): ArbiterMessage {
    const { next, changed } = change
    this.config = resolveAccessLog(loadConfig(next.env, this.overrides), this.proxied)
    this.version = next.version
    this.since = Date.now()
    log.level = this.config.logLevel
    const logs = loadLogConfig(next.env)
    output.setLimits?.(logs.maxBytes, logs.keep)
    if (this.appFromSettings && changed.includes('FORKYARD_APP')) {
      this.app = loadStackConfig(next.env).app
      log.info({ app: this.app }, 'FORKYARD_APP changed: the next generation serves the new module')
    }
    return { t: 'config', version: next.version, env: next.env, server: this.config, app: next.app, changed }
  }

  /** What a new child (worker, jobs process) starts with: the settings in force and the app. */
  launch(): ChildLaunch {
    return { config: this.config, app: this.app, configVersion: this.version, appConfig: this.watcher?.current.app ?? {}, settings: this.settingsEnv() }
  }

  /** The settings environment in force: the watched snapshot, or the environment serve() was given. */
  settingsEnv(): Record<string, string> {
    return this.watcher?.current.env ?? definedEnv(this.env)
  }
}
