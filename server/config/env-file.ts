/**
 * Hot configuration: the .env file as the source of settings that change while the deployment
 * runs. A new version of the file is validated as a whole (every schema: server, messaging, logs,
 * stack, the app's) before anything uses it; a bad value is refused with an error naming the key,
 * the value and what was expected, and the last good configuration stays in force.
 * Variables set in the process environment itself (the shell, compose `environment:`) win over the
 * file, as dotenv does at startup; a file change to such a key is reported and not applied.
 */
import { createHash } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parse } from 'dotenv'
import { loadAppSchema, validateApp, type AppSchema } from './app-schema.js'
import { engineSchemas, loadEngineConfig } from './engine.js'
import { loadConfig } from './load.js'
import { loadLogConfig } from './logging.js'
import { loadBridgeConfig, loadPublisherConfig, loadPushConfig, messagingSchemas } from './messaging.js'
import { schema, type ServerConfig } from './schema.js'
import { restartVariables } from './section.js'
import { loadStackConfig } from './stack.js'

/**
 * Settings that only new worker (and jobs) processes can take: a change means a rolling reload.
 * From the schemas' `apply: 'restart'` marks: the server's own, FORKYARD_APP, and the publisher's
 * (workers and the jobs process publish), and the engine's (tasks and singletons live in it).
 */
export const restartKeys = [...new Set([...restartVariables(schema), ...restartVariables(messagingSchemas.publisher), ...restartVariables(engineSchemas.engine), 'FORKYARD_APP'])]

export interface EnvSnapshot {
  /** The effective environment: process environment, plus the file's keys where not pinned. */
  env: Record<string, string>
  /** The keys that came from the file. */
  fileKeys: string[]
  version: string
  server: Readonly<ServerConfig>
  appSchema: AppSchema
  app: Record<string, unknown>
}

export type Evaluation =
  | { ok: true; next: EnvSnapshot; changed: string[]; restart: string[]; pinned: string[] }
  | { ok: false; error: Error }

export function versionOf(env: Record<string, string>, keys: string[]): string {
  const entries = [...new Set(keys)].sort().map((k) => [k, env[k] ?? null])
  return createHash('sha256').update(JSON.stringify(entries)).digest('hex').slice(0, 12)
}

/** Validates a complete environment; throws the first ForkyardError. */
export function snapshot(env: Record<string, string>, fileKeys: string[]): EnvSnapshot {
  const server = loadConfig(env)
  loadPushConfig(env)
  loadPublisherConfig(env)
  loadBridgeConfig(env)
  loadEngineConfig(env)
  loadLogConfig(env)
  loadStackConfig(env)
  const appSchema = loadAppSchema(env.FORKYARD_APP_SCHEMA ?? '')
  const app = validateApp(appSchema, env)
  const keys = [...fileKeys, ...Object.keys(env).filter((k) => k.startsWith('FORKYARD_') && !k.startsWith('FORKYARD_INTERNAL'))]
  return { env, fileKeys, version: versionOf(env, keys), server, appSchema, app }
}

/** The variables of `env` that are set, as plain strings. */
export function definedEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(env)) if (v !== undefined) out[k] = v
  return out
}

export function readEnvFile(path: string): Record<string, string> {
  return parse(readFileSync(path, 'utf8'))
}

/**
 * What a new file content means against the current snapshot. `base` is the process environment
 * as it was before the file was first loaded (its keys are pinned).
 */
export function evaluate(current: EnvSnapshot, base: NodeJS.ProcessEnv, file: Record<string, string>): Evaluation {
  const env = definedEnv(base)
  const pinned: string[] = []
  for (const [k, v] of Object.entries(file)) {
    if (base[k] !== undefined) {
      if (base[k] !== v) pinned.push(k)
      continue
    }
    env[k] = v
  }
  let next: EnvSnapshot
  try {
    next = snapshot(env, Object.keys(file))
  } catch (error) {
    return { ok: false, error: error as Error }
  }
  const keys = new Set([...Object.keys(current.env), ...Object.keys(env)])
  const changed = [...keys].filter((k) => current.env[k] !== env[k]).sort()
  const restart = changed.filter((k) => restartKeys.includes(k) || current.appSchema[k]?.restart === true || next.appSchema[k]?.restart === true)
  return { ok: true, next, changed, restart, pinned }
}

/** Keys whose values must not be logged. */
export function isSecret(key: string, schema: AppSchema): boolean {
  return schema[key]?.secret === true || /SECRET|PASSWORD|TOKEN|KEY$/.test(key)
}
