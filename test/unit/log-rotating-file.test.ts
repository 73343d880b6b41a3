import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, mkdtempSync, open, openSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { RotatingFile } from '../../server/log/rotating-file.js'

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'fy-rotate-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

function read(path: string): string {
  return existsSync(path) ? readFileSync(path, 'utf8') : ''
}

/**
 * Polls until `done()` holds (the file writes are asynchronous), for at most 10 s: after each turn
 * of the event loop at first (a write callback takes one), then every few ms.
 */
async function until(done: () => boolean, what: string): Promise<void> {
  const deadline = Date.now() + 10_000
  for (let turn = 0; !done(); turn++) {
    if (Date.now() > deadline) assert.fail(`timed out waiting for ${what}`)
    await new Promise((r) => (turn < 100 ? setImmediate(r) : setTimeout(r, 2)))
  }
}

/** A line of exactly `bytes` bytes (newline included). */
function line(tag: string, bytes: number): string {
  const head = `{"tag":"${tag}","pad":"`
  return `${head}${'x'.repeat(bytes - head.length - 3)}"}\n`
}

/**
 * Occupies every thread of libuv's pool (each blocked in open() of a FIFO without a writer), so
 * that an asynchronous fs.write queued now cannot run until release().
 */
function blockThreadPool(t: TestContext): { release: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'fy-rotate-fifo-'))
  const fifo = join(dir, 'block.fifo')
  const made = spawnSync('mkfifo', [fifo], { encoding: 'utf8' })
  assert.equal(made.status, 0, `mkfifo: ${made.stderr}`)
  const threads = Number(process.env.UV_THREADPOOL_SIZE ?? '') || 4
  const opened = Array.from({ length: threads }, () => new Promise<number>((resolve, reject) => open(fifo, 'r', (err, fd) => (err === null ? resolve(fd) : reject(err)))))
  let released = false
  const release = async (): Promise<void> => {
    if (released) return
    released = true
    // O_RDWR never blocks on a FIFO and counts as a writer: every blocked open() returns.
    const rw = openSync(fifo, 'r+')
    try {
      for (const fd of await Promise.all(opened)) closeSync(fd)
    } finally {
      closeSync(rw)
    }
  }
  // Released even when the test fails half-way (else the process would never exit), before the
  // FIFO is removed.
  t.after(async () => {
    await release()
    rmSync(dir, { recursive: true, force: true })
  })
  return { release }
}

test('writes whole lines and appends to an existing file', async (t) => {
  const path = join(tempDir(t), 'sub', 'app.log')
  const f = new RotatingFile(path, 1 << 20, 3)
  assert.ok(existsSync(path), 'created (with its directory) by the constructor')
  f.write('{"a":1}\n')
  f.write('{"b":2}\n{"c":3}\n')
  await until(() => read(path).split('\n').length === 4, 'three lines')
  assert.equal(read(path), '{"a":1}\n{"b":2}\n{"c":3}\n')
  const again = new RotatingFile(path, 1 << 20, 3)
  again.write('{"d":4}\n')
  await until(() => read(path).endsWith('{"d":4}\n'), 'the appended line')
  assert.equal(read(path), '{"a":1}\n{"b":2}\n{"c":3}\n{"d":4}\n')
})

test('a write that would pass maxBytes rotates first: .1 -> .2, file -> .1, at most `keep` kept', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'app.log')
  const f = new RotatingFile(path, 100, 2)
  const lines = ['1', '2', '3', '4', '5', '6', '7'].map((n) => line(n, 40))
  for (const l of lines) {
    f.write(l)
    await until(() => read(path).endsWith(l), `line ${l.slice(8, 9)}`)
  }
  // Two 40-byte lines fit in 100 bytes, a third does not.
  assert.equal(read(path), lines[6])
  assert.equal(read(`${path}.1`), lines[4]! + lines[5]!)
  assert.equal(read(`${path}.2`), lines[2]! + lines[3]!)
  assert.deepEqual(readdirSync(dir).sort(), ['app.log', 'app.log.1', 'app.log.2'], 'lines 1 and 2 rotated out')
})

test('the size of an existing file counts toward maxBytes', async (t) => {
  const path = join(tempDir(t), 'app.log')
  writeFileSync(path, line('old', 90))
  const f = new RotatingFile(path, 100, 1)
  f.write(line('new', 30))
  await until(() => read(path) === line('new', 30), 'the new line in a fresh file')
  assert.equal(read(`${path}.1`), line('old', 90))
})

test('a line longer than maxBytes is written whole, not split', async (t) => {
  const path = join(tempDir(t), 'app.log')
  const f = new RotatingFile(path, 100, 1)
  f.write(line('a', 30))
  await until(() => read(path) === line('a', 30), 'the first line')
  f.write(line('big', 250))
  await until(() => read(path) === line('big', 250), 'the long line')
  assert.equal(read(`${path}.1`), line('a', 30))
})

test('keep: 0 deletes the full file instead of renaming it', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'app.log')
  const f = new RotatingFile(path, 100, 0)
  for (const n of ['1', '2', '3']) {
    f.write(line(n, 60))
    await until(() => read(path) === line(n, 60), `line ${n} alone in the file`)
  }
  assert.deepEqual(readdirSync(dir), ['app.log'])
})

test('maxBytes 0 never rotates', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'app.log')
  const f = new RotatingFile(path, 0, 3)
  for (let i = 0; i < 20; i++) f.write(line(String(i), 100))
  await until(() => statSync(path).size === 2000, 'all 20 lines')
  assert.deepEqual(readdirSync(dir), ['app.log'])
})

/** The log files of `dir`, oldest first: app.log.N ... app.log.1, app.log. */
function logFiles(dir: string): string[] {
  const rotated = readdirSync(dir)
    .filter((name) => /^app\.log\.\d+$/.test(name))
    .sort((a, b) => Number(b.slice(8)) - Number(a.slice(8)))
  return [...rotated, 'app.log'].map((name) => join(dir, name))
}

/** Bytes in all the log files of `dir`; rotated files are only stat'ed again when their number changes. */
function byteCounter(dir: string): () => number {
  let names = -1
  let rotated = 0
  return () => {
    const all = readdirSync(dir)
    if (all.length !== names) {
      names = all.length
      rotated = all.filter((n) => n !== 'app.log').reduce((sum, n) => sum + statSync(join(dir, n)).size, 0)
    }
    return rotated + statSync(join(dir, 'app.log')).size
  }
}

test('5000 lines of varying length through many rotations: every line whole, each exactly once, in order', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'app.log')
  // keep: well above the ~70 rotations made (every one is in the check); not 1000, since rotate()
  // tries keep - 1 renames, most of them failing, which makes each rotation take about 25 ms.
  const keep = 200
  const f = new RotatingFile(path, 8 * 1024, keep)
  const total = 5000
  const make = (i: number): string => line(`n${i}`, 30 + ((i * 7919) % 271)) // 30 to 300 bytes
  const onDisk = byteCounter(dir)
  let written = 0
  let group = 0
  for (let i = 0; i < total; ) {
    // Mostly one line per call, sometimes several in one call.
    const n = i % 13 === 0 ? Math.min(3, total - i) : 1
    let chunk = ''
    for (let k = 0; k < n; k++) chunk += make(i + k)
    f.write(chunk)
    written += Buffer.byteLength(chunk)
    i += n
    // The first half in groups of 1 to 25 lines, each group written before the next (batches of
    // every size, many rotations); the second half as one burst.
    if (i < total / 2 && ++group >= 1 + (i % 25)) {
      group = 0
      await until(() => onDisk() === written, `${written} bytes written`)
    }
  }
  await until(() => onDisk() >= written, `${written} bytes written`)
  const all = logFiles(dir)
  assert.ok(all.length > 20, `expected many rotations, got ${all.length} files`)
  assert.ok(all.length < keep + 1, `fewer than keep + 1 files (none deleted yet), got ${all.length}`)
  const seen: number[] = []
  for (const p of all) {
    const text = read(p)
    assert.ok(text.endsWith('\n'), `${p} ends in the middle of a line`)
    for (const l of text.split('\n').slice(0, -1)) {
      let parsed: { tag: string }
      try {
        parsed = JSON.parse(l) as { tag: string }
      } catch {
        assert.fail(`a broken line in ${p}: ${JSON.stringify(l.slice(0, 80))}`)
      }
      const i = Number(parsed.tag.slice(1))
      assert.equal(`${l}\n`, make(i), `line ${i} intact`)
      seen.push(i)
    }
  }
  assert.equal(seen.length, total)
  assert.deepEqual(seen, Array.from({ length: total }, (_, i) => i))
})

test('a burst of lines is still cut into files of at most maxBytes', async (t) => {
  const dir = tempDir(t)
  const f = new RotatingFile(join(dir, 'app.log'), 8 * 1024, 1000)
  const onDisk = byteCounter(dir)
  for (let i = 0; i < 1000; i++) f.write(line(String(i), 100))
  await until(() => onDisk() === 100_000, 'every line written')
  const sizes = logFiles(dir).map((p) => statSync(p).size)
  assert.ok(sizes.every((s) => s <= 8 * 1024), `file sizes: ${sizes.join(', ')}`)
})

test('flushSync writes what is pending before it returns', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'app.log')
  const f = new RotatingFile(path, 1 << 20, 1)
  const pool = blockThreadPool(t)
  f.write('{"a":1}\n') // in flight (queued behind the blocked pool)
  f.write('{"b":2}\n') // pending
  f.write('{"c":3}\n{"d":4}\n')
  f.flushSync()
  const now = read(path)
  assert.ok(now.includes('{"b":2}\n{"c":3}\n{"d":4}\n'), `after flushSync: ${JSON.stringify(now)}`)
  await pool.release()
  await until(() => read(path).includes('{"a":1}\n'), 'the in-flight line')
  assert.deepEqual(read(path).split('\n').sort(), ['', '{"a":1}', '{"b":2}', '{"c":3}', '{"d":4}'])
  // Nothing pending: flushSync is a no-op, later writes go on as before.
  f.flushSync()
  f.write('{"e":5}\n')
  await until(() => read(path).endsWith('{"e":5}\n'), 'a write after flushSync')
})

test('flushSync also writes the batch already handed to the asynchronous write, in order', async (t) => {
  const dir = tempDir(t)
  const path = join(dir, 'app.log')
  const f = new RotatingFile(path, 1 << 20, 1)
  const pool = blockThreadPool(t)
  f.write('{"a":1}\n')
  f.write('{"b":2}\n')
  f.flushSync()
  const now = read(path)
  await pool.release()
  await until(() => read(path).includes('{"a":1}\n'), 'the in-flight line')
  assert.equal(now, '{"a":1}\n{"b":2}\n', 'on disk when flushSync returned')
})
