import assert from 'node:assert/strict'
import { test } from 'node:test'
import { closeCodes, isPrivate, parseClientMessage } from '../../server/push/protocol.js'
import { ConnectionRateLimit } from '../../server/push/rate-limit.js'

test('subscribe and unsubscribe messages parse, with optional offset, epoch and token', () => {
  assert.deepEqual(parseClientMessage('{"type":"subscribe","channel":"news"}'), { ok: true, message: { type: 'subscribe', channel: 'news', offset: null, epoch: null, token: null } })
  assert.deepEqual(parseClientMessage('{"type":"subscribe","channel":"a:b","offset":3,"epoch":"e","token":"t"}'), { ok: true, message: { type: 'subscribe', channel: 'a:b', offset: 3, epoch: 'e', token: 't' } })
  assert.deepEqual(parseClientMessage('{"type":"unsubscribe","channel":"news"}'), { ok: true, message: { type: 'unsubscribe', channel: 'news' } })
})

test('bad messages are refused with what was expected', () => {
  const reason = (text: string): string => {
    const r = parseClientMessage(text)
    assert.equal(r.ok, false, text)
    return r.ok ? '' : r.reason
  }
  assert.match(reason('nope'), /invalid JSON/)
  assert.match(reason('[1]'), /JSON object/)
  assert.match(reason('{"type":"publish","channel":"x"}'), /expected type "subscribe" or "unsubscribe", got "publish"/)
  assert.match(reason('{"type":"subscribe"}'), /channel/)
  assert.match(reason('{"type":"subscribe","channel":"has space"}'), /channel/)
  assert.match(reason('{"type":"subscribe","channel":"x","offset":-1}'), /offset/)
  assert.match(reason('{"type":"subscribe","channel":"x","offset":1.5}'), /offset/)
  assert.match(reason('{"type":"subscribe","channel":"x","epoch":5}'), /epoch/)
  assert.match(reason('{"type":"subscribe","channel":"x","token":{}}'), /token/)
})

test('close codes are distinct and private channels are recognised', () => {
  const values = Object.values(closeCodes)
  assert.equal(new Set(values).size, values.length)
  assert.equal(isPrivate('private:u1'), true)
  assert.equal(isPrivate('public'), false)
})

test('the connection rate limit allows a burst of twice the rate, then the rate', () => {
  const rl = new ConnectionRateLimit(5)
  let allowed = 0
  for (let i = 0; i < 20; i++) if (rl.allow('ip', 0)) allowed++
  assert.equal(allowed, 10)
  assert.equal(rl.allow('ip', 100), false)
  assert.equal(rl.allow('ip', 200), true, 'one token back after 200 ms at 5/s')
  assert.equal(rl.allow('other', 200), true, 'addresses are independent')
})
