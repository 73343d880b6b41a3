/**
 * The one place that turns FORKYARD_* variables (and programmatic overrides) into a validated,
 * frozen ServerConfig. dotenv is loaded by the entry points, never here.
 */
import { resolve } from 'node:path'
import { ForkyardError, codes } from '../errors.js'
import { duration } from './parse.js'
import { schema, type ServerConfig } from './schema.js'

export type ConfigOverrides = { [K in keyof ServerConfig]?: ServerConfig[K] | string | number | boolean }

/** Reads `env`, applies overrides (strings are parsed like env values), validates, freezes. */
export function loadConfig(env: NodeJS.ProcessEnv, overrides: ConfigOverrides = {}): Readonly<ServerConfig> {
  const out: Record<string, unknown> = {}
  for (const [key, field] of Object.entries(schema) as [keyof ServerConfig, (typeof schema)[keyof ServerConfig]][]) {
    const override = overrides[key]
    if (override !== undefined && typeof override !== 'string') {
      out[key] = typeof override === 'number' || typeof override === 'boolean' ? parseScalar(field, override) : override
      continue
    }
    const raw = override ?? env[field.env] ?? field.default
    out[key] = field.parse(field.env, raw === '' && field.default !== '' ? field.default : raw)
  }
  const config = out as unknown as ServerConfig
  config.runDir = resolve(config.runDir)
  config.tasksDir = resolve(config.tasksDir)
  if (config.pidfile === '') config.pidfile = resolve(config.runDir, 'server.pid')
  else config.pidfile = resolve(config.pidfile)
  if (config.bootTimeoutMs <= 0) throw invalid('FORKYARD_BOOT_TIMEOUT', 'longer than 0', config.bootTimeoutMs)
  if (config.timeoutMs < 100) throw invalid('FORKYARD_TIMEOUT', 'at least 100ms', config.timeoutMs)
  return Object.freeze(config)
}

function parseScalar(field: { env: string; parse: (n: string, raw: string) => unknown }, value: number | boolean): unknown {
  // Numbers given in code are in the field's own unit (ms for durations, bytes for sizes, a count
  // otherwise); they go through the same parser as the environment so the same checks apply.
  if (typeof value === 'boolean') return field.parse(field.env, String(value))
  const raw = field.parse === duration ? `${value}ms` : String(value)
  return field.parse(field.env, raw)
}

function invalid(name: string, expected: string, got: unknown): ForkyardError {
  return new ForkyardError(codes.CONFIG, `Expected ${name} to be ${expected}, got ${JSON.stringify(got)}`)
}
