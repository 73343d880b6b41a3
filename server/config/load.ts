/**
 * The one place that turns FORKYARD_* variables (and programmatic overrides) into a validated,
 * frozen ServerConfig. dotenv is loaded by the entry points, never here.
 */
import { resolve } from 'node:path'
import { ForkyardError, codes } from '../errors.js'
import { schema, type ServerConfig } from './schema.js'
import { readSection, type Overrides } from './section.js'

export type ConfigOverrides = Overrides<ServerConfig>

/** Reads `env`, applies overrides (strings are parsed like env values), validates, freezes. */
export function loadConfig(env: NodeJS.ProcessEnv, overrides: ConfigOverrides = {}): Readonly<ServerConfig> {
  const config = readSection(schema, env, overrides)
  config.runDir = resolve(config.runDir)
  config.tasksDir = resolve(config.tasksDir)
  if (config.pidfile === '') config.pidfile = resolve(config.runDir, 'server.pid')
  else config.pidfile = resolve(config.pidfile)
  if (config.bootTimeoutMs <= 0) throw invalid('FORKYARD_BOOT_TIMEOUT', 'longer than 0', config.bootTimeoutMs)
  if (config.timeoutMs < 100) throw invalid('FORKYARD_TIMEOUT', 'at least 100ms', config.timeoutMs)
  return Object.freeze(config)
}

function invalid(name: string, expected: string, got: unknown): ForkyardError {
  return new ForkyardError(codes.CONFIG, `Expected ${name} to be ${expected}, got ${JSON.stringify(got)}`)
}
