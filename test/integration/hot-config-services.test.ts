/**
 * The push and bridge processes follow the same .env as the workers: a valid edit is applied in
 * each within a second, a bad one refused by each, and the push process enforces the new limit.
 */
import assert from 'node:assert/strict'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { startProc } from '../helpers/proc.js'
import { connect } from '../helpers/push.js'
import { freePort, tempDir, until } from '../helpers/server.js'

test('push and bridge apply a valid .env edit within 1 s and refuse a bad one', async (t) => {
  const dir = tempDir('fy-hot-')
  const port = await freePort()
  const envFile = join(dir, '.env')
  writeFileSync(envFile, 'FORKYARD_PUSH_MAX_SUBSCRIPTIONS=5\nFORKYARD_BRIDGE_HISTORY_COUNT=100\n')
  const env = { FORKYARD_RUN_DIR: join(dir, 'run'), FORKYARD_PUSH_BIND: `127.0.0.1:${port}` }
  const bridge = startProc(t, ['bridge'], env, { cwd: dir })
  await bridge.waitLog((l) => l.msg === 'bridge listening', 'bridge listening')
  const push = startProc(t, ['push'], env, { cwd: dir })
  await push.waitLog((l) => l.msg === 'push listening', 'push listening')

  const editedAt = Date.now()
  writeFileSync(envFile, 'FORKYARD_PUSH_MAX_SUBSCRIPTIONS=1\nFORKYARD_BRIDGE_HISTORY_COUNT=10\n')
  for (const p of [bridge, push]) {
    const applied = await p.waitLog((l) => l.msg === 'config applied', 'config applied', 5000)
    assert.ok(Date.parse(String(applied.time)) - editedAt <= 1000, `${String(applied.svc)} applied within 1 s`)
  }
  // The new limit is in force: a second subscription is refused.
  const c = connect(`ws://127.0.0.1:${port}/ws`)
  await c.opened
  c.send({ type: 'subscribe', channel: 'a' })
  c.send({ type: 'subscribe', channel: 'b' })
  const closed = await c.closed
  assert.equal(closed.code, 4413)
  assert.match(closed.reason, /at most 1 subscriptions/)

  writeFileSync(envFile, 'FORKYARD_PUSH_MAX_SUBSCRIPTIONS=many\nFORKYARD_BRIDGE_HISTORY_COUNT=10\n')
  for (const p of [bridge, push]) {
    const refused = await p.waitLog((l) => l.msg?.startsWith('config change refused') === true, 'refused', 5000)
    assert.match(String(refused.msg), /FORKYARD_PUSH_MAX_SUBSCRIPTIONS/)
    assert.match(String(refused.msg), /"many"/)
  }
  // Both keep serving with the last good configuration.
  await until('push still ready', async () => (await fetch(`http://127.0.0.1:${port}/readyz`)).status === 200, 10_000)
})
