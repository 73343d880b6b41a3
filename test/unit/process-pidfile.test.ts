import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test, type TestContext } from 'node:test'
import { claimPidfile, isAlive, readPid, removePidfile, writePidfile } from '../../server/process/pidfile.js'

function pidfile(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'fy-pid-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'x.pid')
}

/** The pid of a process that has exited. */
function deadPid(): number {
  const pid = spawnSync(process.execPath, ['-e', '0']).pid
  assert.ok(pid !== undefined && !isAlive(pid))
  return pid
}

test('claimPidfile: no file, a stale file, an empty or garbled file, or our own pid: taken', (t) => {
  const path = pidfile(t)
  for (const before of [null, `${deadPid()}\n`, '', 'garbage\n', '0\n', `${process.pid}\n`]) {
    if (before === null) rmSync(path, { force: true })
    else writeFileSync(path, before)
    assert.equal(claimPidfile(path), null, JSON.stringify(before))
    assert.equal(readFileSync(path, 'utf8'), `${process.pid}\n`)
  }
})

test('claimPidfile: a live other process keeps the file and its pid is returned', (t) => {
  const path = pidfile(t)
  writeFileSync(path, `${process.ppid}\n`)
  assert.equal(claimPidfile(path), process.ppid)
  assert.equal(readPid(path), process.ppid)
  assert.throws(() => writePidfile(path), (err: Error & { code?: string }) => {
    assert.equal(err.code, 'FORKYARD_ERR_ALREADY_RUNNING')
    assert.match(err.message, new RegExp(`pid ${process.ppid}`))
    return true
  })
})

test('removePidfile removes only a file that names this process', (t) => {
  const path = pidfile(t)
  writeFileSync(path, `${process.ppid}\n`)
  removePidfile(path)
  assert.ok(existsSync(path), 'another process holds it')
  rmSync(path)
  writePidfile(path)
  removePidfile(path)
  assert.ok(!existsSync(path))
  removePidfile(path)
})
