import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import pino from 'pino'
import { AccessLogRotation } from '../../server/stack/access-log.js'

const quiet = pino({ level: 'silent' })

test('access.log is rotated once past the size: files shifted, the writer asked to reopen, no line lost', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-access-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, 'access.log')
  // The writer (nginx) holds its file open across the rename, as nginx does until USR1.
  let fd = openSync(path, 'a')
  let reopened = 0
  const rotation = new AccessLogRotation(path, { maxBytes: 100, keep: 2 }, () => {
    closeSync(fd)
    fd = openSync(path, 'a')
    reopened++
    return true
  }, quiet)
  const line = (i: number): string => `{"i":${i}}\n`
  let i = 0
  assert.equal(rotation.check(), false, 'no file yet: nothing to do')
  for (let round = 0; round < 4; round++) {
    for (let k = 0; k < 15; k++) writeSync(fd, line(i++)) // over 100 bytes: past the limit
    assert.equal(rotation.check(), true, `round ${round}: rotated`)
  }
  writeSync(fd, line(i++))
  closeSync(fd)
  assert.equal(reopened, 4)
  const read = (f: string): number[] => readFileSync(join(dir, f), 'utf8').split('\n').filter(Boolean).map((l) => (JSON.parse(l) as { i: number }).i)
  // keep 2: the two newest rotated files and the live one; the oldest were dropped.
  assert.deepEqual([...read('access.log.2'), ...read('access.log.1'), ...read('access.log')], Array.from({ length: 31 }, (_, k) => k + 30))
  assert.equal(rotation.check(), false, 'below the limit: nothing to do')
  appendFileSync(path, 'x'.repeat(10))
  rotation.setLimits({ maxBytes: 0, keep: 2 })
  assert.equal(rotation.check(), false, 'maxBytes 0: never rotated')
})
