import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { getPriority } from 'node:os'
import { test } from 'node:test'
import { BOOT_NICE, canRestorePriority, lowerForBoot, restoreAfterBoot, setProcessNice } from '../../server/process/priority.js'

test('a child is lowered by BOOT_NICE and given its priority back when this process may', async (t) => {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'ignore' })
  t.after(() => child.kill('SIGKILL'))
  const pid = child.pid!
  const base = getPriority()
  assert.equal(setProcessNice(pid, base + BOOT_NICE), true)
  assert.equal(getPriority(pid), Math.min(19, base + BOOT_NICE))
  const may = canRestorePriority()
  if (process.getuid?.() === 0) assert.equal(may, true, 'root has CAP_SYS_NICE')
  assert.equal(setProcessNice(pid, base), may, 'restoring succeeds exactly when canRestorePriority says so')
  if (may) assert.equal(getPriority(pid), base)
  assert.equal(setProcessNice(2 ** 22 + 12345, 0), false, 'a pid that does not exist')
})

test('lowerForBoot lowers a booting child only where restoreAfterBoot can give its priority back', (t) => {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 10000)'], { stdio: 'ignore' })
  t.after(() => child.kill('SIGKILL'))
  const pid = child.pid!
  const base = getPriority()
  const lowered = lowerForBoot(pid)
  assert.equal(lowered, canRestorePriority())
  assert.equal(getPriority(pid), lowered ? Math.min(19, base + BOOT_NICE) : base)
  if (lowered) {
    assert.equal(restoreAfterBoot(pid), true)
    assert.equal(getPriority(pid), base)
  }
})
