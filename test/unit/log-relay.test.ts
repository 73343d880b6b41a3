import { test } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { PassThrough } from 'node:stream'
import { relayLines } from '../../server/log/relay.js'

type Output = Parameters<typeof relayLines>[1]

interface Harness {
  stream: PassThrough
  writes: string[]
  wrapped: string[]
  /** Writes one chunk and resolves once relayLines has handled it. */
  feed: (chunk: string | Buffer) => Promise<void>
  /** Ends the stream and resolves once relayLines has handled the end. */
  finish: () => Promise<void>
}

function harness(): Harness {
  const stream = new PassThrough()
  const writes: string[] = []
  const wrapped: string[] = []
  const output = {
    write(s: string): boolean {
      writes.push(s)
      return true
    },
  } as unknown as Output
  relayLines(stream, output, {
    wrap: (line) => {
      wrapped.push(line)
      return JSON.stringify({ msg: line })
    },
  })
  // Listeners added after relayLines' own run after them, so when these fire relayLines is done.
  const feed = async (chunk: string | Buffer): Promise<void> => {
    const seen = once(stream, 'data')
    stream.write(chunk)
    await seen
  }
  const finish = async (): Promise<void> => {
    const ended = once(stream, 'end')
    stream.end()
    await ended
  }
  return { stream, writes, wrapped, feed, finish }
}

test('a JSON line passes through untouched in one write', async () => {
  const h = harness()
  await h.feed('{"level":30,"msg":"hi"}\n')
  assert.deepEqual(h.writes, ['{"level":30,"msg":"hi"}\n'])
  assert.deepEqual(h.wrapped, [])
  await h.finish()
  assert.deepEqual(h.writes, ['{"level":30,"msg":"hi"}\n'])
})

test('a line split across chunks is written only once whole', async () => {
  const h = harness()
  await h.feed('{"level":30,')
  assert.deepEqual(h.writes, [])
  await h.feed('"msg":"split"')
  assert.deepEqual(h.writes, [])
  await h.feed('}\n{"next":')
  assert.deepEqual(h.writes, ['{"level":30,"msg":"split"}\n'])
  await h.feed('1}\n')
  assert.deepEqual(h.writes, ['{"level":30,"msg":"split"}\n', '{"next":1}\n'])
  await h.finish()
  assert.equal(h.writes.length, 2)
})

test('a 100 KiB line arriving in 1 KiB chunks comes out as one write of the whole line', async () => {
  const h = harness()
  const line = '{"msg":"' + 'x'.repeat(100 * 1024 - 11) + '"}\n'
  assert.equal(line.length, 100 * 1024)
  for (let i = 0; i < line.length; i += 1024) {
    await h.feed(line.slice(i, i + 1024))
    if (i + 1024 < line.length) assert.equal(h.writes.length, 0, `written early after chunk at ${i}`)
  }
  assert.equal(h.writes.length, 1)
  assert.equal(h.writes[0], line)
  await h.finish()
  assert.equal(h.writes.length, 1)
})

test('several JSON lines in one chunk go out in one write', async () => {
  const h = harness()
  const text = '{"a":1}\n{"b":2}\n{"c":3}\n'
  await h.feed(text)
  assert.deepEqual(h.writes, [text])
  assert.deepEqual(h.wrapped, [])
})

test('several JSON lines plus a partial one: the complete ones are written, the rest waits', async () => {
  const h = harness()
  await h.feed('{"a":1}\n{"b":2}\n{"c"')
  assert.deepEqual(h.writes, ['{"a":1}\n{"b":2}\n'])
  await h.feed(':3}\n')
  assert.deepEqual(h.writes, ['{"a":1}\n{"b":2}\n', '{"c":3}\n'])
})

test('non-JSON lines are passed to wrap(), JSON lines around them are kept', async () => {
  const h = harness()
  await h.feed('{"a":1}\nTypeError: boom\n    at foo (file.js:1:2)\n{"b":2}\n')
  assert.deepEqual(h.wrapped, ['TypeError: boom', '    at foo (file.js:1:2)'])
  assert.deepEqual(h.writes, [
    '{"a":1}\n' + JSON.stringify({ msg: 'TypeError: boom' }) + '\n' + JSON.stringify({ msg: '    at foo (file.js:1:2)' }) + '\n{"b":2}\n',
  ])
})

test('empty lines are dropped, not wrapped', async () => {
  const h = harness()
  await h.feed('plain\n\n\n')
  assert.deepEqual(h.wrapped, ['plain'])
  assert.deepEqual(h.writes, [JSON.stringify({ msg: 'plain' }) + '\n'])
})

test('a trailing partial line is flushed with a newline at end', async () => {
  const h = harness()
  await h.feed('{"a":1}\n{"last":true}')
  assert.deepEqual(h.writes, ['{"a":1}\n'])
  await h.finish()
  assert.deepEqual(h.writes, ['{"a":1}\n', '{"last":true}\n'])
})

test('a trailing partial non-JSON line is wrapped at end', async () => {
  const h = harness()
  await h.feed('Segmentation fault')
  assert.deepEqual(h.writes, [])
  await h.finish()
  assert.deepEqual(h.wrapped, ['Segmentation fault'])
  assert.deepEqual(h.writes, [JSON.stringify({ msg: 'Segmentation fault' }) + '\n'])
})

test('end with nothing pending writes nothing', async () => {
  const h = harness()
  await h.feed('{"a":1}\n')
  await h.finish()
  assert.deepEqual(h.writes, ['{"a":1}\n'])
})

test('a multi-byte UTF-8 character split across chunks is decoded intact', async () => {
  const h = harness()
  const bytes = Buffer.from('{"m":"aé"}\n', 'utf8')
  const cut = bytes.indexOf(0xc3) + 1 // between the two bytes of "é"
  await h.feed(bytes.subarray(0, cut))
  await h.feed(bytes.subarray(cut))
  assert.deepEqual(h.writes, ['{"m":"aé"}\n'])
})

test('a console.log of an object ("{ a: 1 }", not JSON) is wrapped', async () => {
  const h = harness()
  await h.feed('{ a: 1 }\n')
  assert.deepEqual(h.wrapped, ['{ a: 1 }'])
  assert.deepEqual(h.writes, [JSON.stringify({ msg: '{ a: 1 }' }) + '\n'])
})
