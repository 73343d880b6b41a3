/**
 * Singletons over a lease (a fake one here, in memory): the holder runs it with its fencing token;
 * a holder whose renewals fail stops its copy (signal, then stop()) before the lease runs out, and
 * stands by until it can acquire again (with a new token); a lease taken by another stops it at once.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pino } from 'pino'
import type { Acquired, Leases } from '../../server/jobs/leases.js'
import { singletonDefinitions } from '../../server/jobs/registry.js'
import { Singletons } from '../../server/jobs/singletons.js'
import { until } from '../helpers/server.js'

class FakeLeases implements Leases {
  readonly renewEveryMs = 100
  readonly leaseMs = 300
  holder: number | null = null
  fence = 0
  down = false
  acquire(): Promise<Acquired> {
    if (this.down) return Promise.reject(new Error('engine down'))
    if (this.holder !== null) return Promise.resolve({ holder: `other:1:${this.holder}` })
    this.holder = ++this.fence
    return Promise.resolve({ token: this.holder })
  }
  renew(_name: string, token: number): Promise<boolean> {
    if (this.down) return Promise.reject(new Error('engine down'))
    return Promise.resolve(this.holder === token)
  }
  release(_name: string, token: number): Promise<void> {
    if (this.holder === token) this.holder = null
    return Promise.resolve()
  }
}

test('a holder that cannot renew stops its copy before the lease runs out, then takes it again with a higher token', async (t) => {
  const events: string[] = []
  singletonDefinitions.set('lease-test', (ctx) => {
    events.push(`start ${ctx.fencingToken}`)
    ctx.signal.addEventListener('abort', () => events.push(`abort ${ctx.fencingToken}`))
    return () => events.push(`stop ${ctx.fencingToken}`)
  })
  t.after(() => singletonDefinitions.delete('lease-test'))
  const leases = new FakeLeases()
  const s = new Singletons(leases, pino({ level: 'silent' }))
  s.start()
  t.after(() => s.stop())
  await until('running', () => s.states.get('lease-test')?.state === 'running', 2000, 10)
  assert.equal(s.states.get('lease-test')?.fencingToken, 1)
  leases.down = true
  const downAt = Date.now()
  await until('stopped here', () => events.includes('stop 1'), 2000, 10)
  const took = Date.now() - downAt
  assert.ok(took < leases.leaseMs, `stopped ${took} ms after the last renew, within the lease`)
  assert.deepEqual(events, ['start 1', 'abort 1', 'stop 1'], 'signal first, then stop()')
  assert.equal(s.states.get('lease-test')?.state, 'standby')
  // The lease ran out in the engine meanwhile; it comes back.
  leases.holder = null
  leases.down = false
  await until('running again', () => s.states.get('lease-test')?.state === 'running', 2000, 10)
  assert.equal(s.states.get('lease-test')?.fencingToken, 2)
  // Another holder took it (an expired lease re-acquired elsewhere): stopped at the next renew.
  leases.holder = 99
  await until('lost', () => events.includes('stop 2'), 2000, 10)
  assert.equal(s.states.get('lease-test')?.holder, undefined)
  await until('standby behind the other', () => s.states.get('lease-test')?.holder === 'other:1:99', 2000, 10)
  assert.equal(s.states.get('lease-test')?.state, 'standby')
})
