/**
 * Imports the user's app module in a worker (never in the arbiter). The default export must be a
 * node:http request listener; optional named exports `start()` (awaited before the worker reports
 * ready) and `stop()` (awaited after the worker has drained).
 */
import type { IncomingMessage, ServerResponse } from 'node:http'
import { pathToFileURL } from 'node:url'
import { ForkyardError, codes } from '../errors.js'

export type RequestListener = (req: IncomingMessage, res: ServerResponse) => unknown

export interface LoadedApp {
  listener: RequestListener
  start?: () => unknown
  stop?: () => unknown
}

export async function loadApp(path: string): Promise<LoadedApp> {
  let mod: Record<string, unknown>
  try {
    mod = (await import(pathToFileURL(path).href)) as Record<string, unknown>
  } catch (err) {
    throw new ForkyardError(codes.APP_LOAD, `Failed to import the app module ${path}: ${(err as Error)?.message ?? String(err)}`, { cause: err })
  }
  // CommonJS compiled from TypeScript/Babel puts the export under default.default.
  let listener = mod.default
  if (typeof listener === 'object' && listener !== null && typeof (listener as { default?: unknown }).default === 'function') {
    listener = (listener as { default: unknown }).default
  }
  if (typeof listener !== 'function') {
    throw new ForkyardError(
      codes.APP_LOAD,
      `Expected the app module ${path} to have a default export that is a request listener (req, res) => void, got ${describe(listener)}`,
    )
  }
  const app: LoadedApp = { listener: listener as RequestListener }
  const start = mod.start
  const stop = mod.stop
  if (typeof start === 'function') app.start = start as () => unknown
  if (typeof stop === 'function') app.stop = stop as () => unknown
  return app
}

function describe(value: unknown): string {
  if (value === undefined) return 'no default export'
  if (value === null) return 'null'
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`
}
