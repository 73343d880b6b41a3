import assert from 'node:assert/strict'
import { test } from 'node:test'
import { signPushToken, verifyPushToken } from '../../server/push/tokens.js'

const secret = 's'.repeat(40)

test('a signed token verifies with its channels and expiry', () => {
  const token = signPushToken(secret, { channels: ['private:a', 'private:b'], ttlSeconds: 60, now: 1_000_000 })
  const v = verifyPushToken(secret, token, 1_000_000)
  assert.deepEqual(v, { ok: true, claims: { channels: ['private:a', 'private:b'], exp: 1060 } })
})

test('expired, tampered, wrong-secret, malformed and missing tokens are refused with a reason', () => {
  const token = signPushToken(secret, { channels: ['private:a'], ttlSeconds: 60, now: 0 })
  assert.deepEqual(verifyPushToken(secret, token, 61_000), { ok: false, reason: 'token expired' })
  const [v, payload, sig] = token.split('.')
  const forged = Buffer.from(JSON.stringify({ ch: ['private:admin'], exp: 9e9 })).toString('base64url')
  assert.deepEqual(verifyPushToken(secret, `${v}.${forged}.${sig}`, 0), { ok: false, reason: 'bad token signature' })
  assert.deepEqual(verifyPushToken('t'.repeat(40), token, 0), { ok: false, reason: 'bad token signature' })
  assert.deepEqual(verifyPushToken(secret, `${v}.${payload}`, 0), { ok: false, reason: 'malformed token' })
  assert.deepEqual(verifyPushToken(secret, 'v2.a.b', 0), { ok: false, reason: 'malformed token' })
  assert.deepEqual(verifyPushToken(secret, undefined, 0), { ok: false, reason: 'token required' })
  assert.deepEqual(verifyPushToken('', token, 0).ok, false)
})

test('a short secret is refused when signing', () => {
  assert.throws(() => signPushToken('short', { channels: [] }), /at least 32 characters/)
})
