/**
 * Tokens for private channels: "v1.<payload>.<signature>", base64url, where payload is
 * {"ch":["private:a",...],"exp":<unix seconds>} and signature = HMAC-SHA256(secret, "v1." + payload).
 * The app issues them (signPushToken), the push process verifies them (constant-time compare).
 */
import { createHmac, timingSafeEqual } from 'node:crypto'

export interface TokenClaims {
  channels: string[]
  /** Expiry, unix seconds. */
  exp: number
}

export type Verified = { ok: true; claims: TokenClaims } | { ok: false; reason: string }

function sign(secret: string, body: string): string {
  return createHmac('sha256', secret).update(body).digest('base64url')
}

export function signPushToken(secret: string, options: { channels: string[]; ttlSeconds?: number; now?: number }): string {
  if (secret.length < 32) throw new RangeError('Expected a push secret of at least 32 characters (FORKYARD_PUSH_SECRET)')
  const exp = Math.floor((options.now ?? Date.now()) / 1000) + (options.ttlSeconds ?? 3600)
  const payload = Buffer.from(JSON.stringify({ ch: options.channels, exp })).toString('base64url')
  const body = `v1.${payload}`
  return `${body}.${sign(secret, body)}`
}

export function verifyPushToken(secret: string, token: unknown, now = Date.now()): Verified {
  if (secret === '') return { ok: false, reason: 'private channels are disabled (no FORKYARD_PUSH_SECRET)' }
  if (typeof token !== 'string' || token === '') return { ok: false, reason: 'token required' }
  const parts = token.split('.')
  if (parts.length !== 3 || parts[0] !== 'v1') return { ok: false, reason: 'malformed token' }
  const body = `${parts[0]}.${parts[1]}`
  const expected = Buffer.from(sign(secret, body))
  const given = Buffer.from(parts[2] ?? '')
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad token signature' }
  let claims: { ch?: unknown; exp?: unknown }
  try {
    claims = JSON.parse(Buffer.from(parts[1] ?? '', 'base64url').toString('utf8')) as { ch?: unknown; exp?: unknown }
  } catch {
    return { ok: false, reason: 'malformed token' }
  }
  if (!Array.isArray(claims.ch) || !claims.ch.every((c) => typeof c === 'string') || typeof claims.exp !== 'number') {
    return { ok: false, reason: 'malformed token' }
  }
  if (claims.exp * 1000 <= now) return { ok: false, reason: 'token expired' }
  return { ok: true, claims: { channels: claims.ch as string[], exp: claims.exp } }
}
