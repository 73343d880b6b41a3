/**
 * The app's own settings in .env, declared in a JSON file (FORKYARD_APP_SCHEMA) so that every
 * process, the arbiter included, can validate them without running app code:
 *   { "GREETING":     { "type": "string" },
 *     "MAX_ITEMS":    { "type": "int", "min": 1, "max": 1000, "default": "50" },
 *     "MODE":         { "type": "enum", "values": ["fast", "safe"] },
 *     "DATABASE_URL": { "type": "string", "restart": true, "secret": true } }
 * "restart": a change needs new worker processes (a rolling reload, by itself); "secret": the
 * value is never logged. Keys not declared are passed through as strings.
 */
import { readFileSync } from 'node:fs'
import { ForkyardError, codes } from '../errors.js'
import { bool, duration, int, oneOf, size, type Parser } from './parse.js'

export interface AppKey {
  type: 'string' | 'int' | 'bool' | 'enum' | 'duration' | 'size'
  min?: number
  max?: number
  values?: string[]
  default?: string
  restart?: boolean
  secret?: boolean
}

export type AppSchema = Record<string, AppKey>

const types = ['string', 'int', 'bool', 'enum', 'duration', 'size']

export function loadAppSchema(path: string): AppSchema {
  if (path === '') return {}
  let parsed: unknown
  try {
    parsed = JSON.parse(readFileSync(path, 'utf8'))
  } catch (err) {
    throw new ForkyardError(codes.CONFIG, `Expected FORKYARD_APP_SCHEMA to name a readable JSON file, got ${JSON.stringify(path)}: ${(err as Error).message}`, { cause: err })
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new ForkyardError(codes.CONFIG, `Expected the app schema ${path} to be a JSON object of keys`)
  for (const [key, spec] of Object.entries(parsed as Record<string, AppKey>)) {
    if (!types.includes(spec?.type)) throw new ForkyardError(codes.CONFIG, `Expected "type" of ${key} in ${path} to be one of ${types.join(', ')}, got ${JSON.stringify(spec?.type)}`)
    if (spec.type === 'enum' && !(Array.isArray(spec.values) && spec.values.length > 0)) throw new ForkyardError(codes.CONFIG, `Expected "values" (a non-empty array) for the enum ${key} in ${path}`)
  }
  return parsed as AppSchema
}

function parserOf(spec: AppKey): Parser<unknown> {
  switch (spec.type) {
    case 'int':
      return int(Math.max(0, spec.min ?? 0), spec.max ?? Number.MAX_SAFE_INTEGER)
    case 'bool':
      return bool
    case 'enum':
      return oneOf(...(spec.values ?? []))
    case 'duration':
      return duration
    case 'size':
      return size
    default:
      return (_n, raw) => raw
  }
}

/** Validates every declared key of `env`; throws the first error naming key, value and expectation. */
export function validateApp(schema: AppSchema, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [key, spec] of Object.entries(schema)) {
    const raw = env[key] ?? spec.default
    if (raw === undefined) continue
    out[key] = parserOf(spec)(key, raw)
  }
  return out
}
