/**
 * Parsers for FORKYARD_* values. Each returns the parsed value or throws a ForkyardError that names
 * the variable, what was received and what was expected, e.g.
 *   Expected FORKYARD_WORKERS to be a whole number >= 0, got "two"
 */
import { ForkyardError, codes } from '../errors.js'

export type Parser<T> = (name: string, raw: string) => T

function fail(name: string, expected: string, raw: string): never {
  throw new ForkyardError(codes.CONFIG, `Expected ${name} to be ${expected}, got ${JSON.stringify(raw)}`)
}

export function int(min: number, max = Number.MAX_SAFE_INTEGER): Parser<number> {
  return (name, raw) => {
    const s = raw.trim()
    if (!/^\d+$/.test(s)) fail(name, `a whole number >= ${min}`, raw)
    const n = Number(s)
    if (n < min || n > max) fail(name, `a whole number from ${min} to ${max}`, raw)
    return n
  }
}

const durationUnits: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }

/** A duration: "500ms", "30s", "2m", "1h"; a plain number means seconds (as gunicorn's --timeout). */
export function duration(name: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(raw.trim())
  if (m === null) fail(name, 'a duration like "30s", "500ms" or "2m" (a plain number is seconds)', raw)
  const ms = Number(m[1]) * (durationUnits[m[2] ?? 's'] ?? 1000)
  return Math.round(ms)
}

const sizeUnits: Record<string, number> = { b: 1, k: 1024, kb: 1024, kib: 1024, m: 1024 ** 2, mb: 1024 ** 2, mib: 1024 ** 2, g: 1024 ** 3, gb: 1024 ** 3, gib: 1024 ** 3 }

/** A size in bytes: "512MB", "16KiB", "1g"; a plain number is bytes. Units are powers of 1024. */
export function size(name: string, raw: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([a-zA-Z]*)$/.exec(raw.trim())
  const unit = sizeUnits[(m?.[2] ?? '').toLowerCase() || 'b']
  if (m === null || unit === undefined) fail(name, 'a size like "512MB", "16KiB" or a number of bytes', raw)
  return Math.round(Number(m[1]) * unit)
}

export function bool(name: string, raw: string): boolean {
  const s = raw.trim().toLowerCase()
  if (['1', 'true', 'yes', 'on'].includes(s)) return true
  if (['0', 'false', 'no', 'off'].includes(s)) return false
  return fail(name, 'a boolean (true/false, 1/0, yes/no, on/off)', raw)
}

export function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (name, raw) => {
    const s = raw.trim()
    if (!(values as string[]).includes(s)) fail(name, `one of ${values.join(', ')}`, raw)
    return s as T
  }
}

export function text(name: string, raw: string): string {
  const s = raw.trim()
  if (s === '') fail(name, 'a non-empty string', raw)
  return s
}

export type BindAddress =
  | { kind: 'tcp'; host: string; port: number; text: string }
  | { kind: 'unix'; path: string; text: string }

/** A comma-separated list of "host:port", "[v6]:port", ":port" or "unix:/path/to.sock". */
export function binds(name: string, raw: string): BindAddress[] {
  const parts = raw.split(',').map((s) => s.trim()).filter((s) => s !== '')
  if (parts.length === 0) fail(name, 'one or more of "host:port" or "unix:/path" separated by commas', raw)
  return parts.map((part) => {
    if (part.startsWith('unix:')) {
      const path = part.slice(5)
      if (path === '' || !path.startsWith('/') && !path.startsWith('.')) {
        fail(name, 'a Unix socket as "unix:/absolute/path" or "unix:./relative/path"', part)
      }
      return { kind: 'unix', path, text: part }
    }
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]*)):(\d+)$/.exec(part)
    const port = m === null ? NaN : Number(m[3])
    if (m === null || !(port >= 0 && port <= 65535)) {
      fail(name, '"host:port" (port 0-65535), "[ipv6]:port" or "unix:/path"', part)
    }
    const host = m[1] ?? (m[2] === '' ? '0.0.0.0' : m[2] ?? '0.0.0.0')
    return { kind: 'tcp', host, port, text: part }
  })
}
