/**
 * Tokens against the real push and bridge processes: a private subscription ends when its token
 * expires (nothing is delivered past it, the client is told the offset it reached); the kit's
 * client subscribes again with a fresh token and misses nothing; a token in the URL is not
 * accepted (proxies log URLs); app code cannot publish on a reserved channel.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import WebSocket from 'ws'
import { PushClient, type PushMessage } from '../../client/push-client.js'
import { signPushToken } from '../../server/push/tokens.js'
import { startProc } from '../helpers/proc.js'
import { connect, startStack } from '../helpers/push.js'
import { root, sleep, until } from '../helpers/server.js'

const publisher = join(root, 'test/fixtures/publisher.mjs')
const secret = 'test-secret-test-secret-test-secret!'

test('a private subscription ends when its token expires; a fresh token resumes with no gap; no token in the URL; no publish on $ channels', async (t) => {
  const stack = await startStack(t)
  const publish = async (count: number): Promise<void> => {
    const p = startProc(t, [], { ...stack.env, NAME: 'p', CHANNEL: 'private:alice', COUNT: String(count) }, { script: publisher })
    await p.waitLog((l) => l.done === true, 'published')
  }

  // A token in the URL opens nothing.
  const viaUrl = connect(`${stack.url}?token=${signPushToken(secret, { channels: ['private:alice'] })}`)
  await viaUrl.opened
  viaUrl.send({ type: 'subscribe', channel: 'private:alice' })
  assert.equal((await viaUrl.closed).code, 4401)

  // A raw client with a 2 s token: it receives until the expiry, then 'unsubscribed' with its offset, then nothing.
  const raw = connect(stack.url)
  await raw.opened
  raw.send({ type: 'subscribe', channel: 'private:alice', token: signPushToken(secret, { channels: ['private:alice'], ttlSeconds: 2 }) })
  await until('raw subscribed', () => raw.messages.find((m) => m.type === 'subscribed'))

  // The kit's client with getToken: short tokens, replaced on every (re)subscribe.
  let tokens = 0
  const received: number[] = []
  const client = new PushClient(stack.url, {
    WebSocket: WebSocket as unknown as typeof globalThis.WebSocket,
    getToken: () => {
      tokens++
      return signPushToken(secret, { channels: ['private:alice'], ttlSeconds: 2 })
    },
  })
  t.after(() => client.close())
  client.subscribe('private:alice', (_data, msg: PushMessage) => received.push(msg.offset))
  await until('client subscribed', () => tokens === 1, 5000)
  await sleep(300)

  await publish(5)
  await until('both got 5', () => received.length === 5 && raw.messages.filter((m) => m.type === 'message').length === 5)
  const expired = await until('raw told its token expired', () => raw.messages.find((m) => m.type === 'unsubscribed'), 5000, 50)
  assert.equal(expired.reason, 'token-expired')
  assert.equal(expired.offset, 5)
  await until('the client took a fresh token', () => tokens >= 2, 5000, 50)
  await publish(5)
  await until('the client got 10', () => received.length === 10, 5000)
  assert.deepEqual(received, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 'no gap, no duplicate across the token refresh')
  await sleep(300)
  assert.equal(raw.messages.filter((m) => m.type === 'message').length, 5, 'nothing delivered past the expiry')
  raw.ws.close()

  // App code cannot publish on a reserved channel.
  const forged = startProc(t, [], { ...stack.env, NAME: 'f', CHANNEL: '$sys:heartbeat', COUNT: '1' }, { script: publisher })
  const line = await forged.waitLog((l) => l.msg === 'publish failed', 'publish refused')
  assert.equal(line.code, 'FORKYARD_ERR_PUBLISH_INVALID')
  assert.match(String(line.error), /reserved/)
})
