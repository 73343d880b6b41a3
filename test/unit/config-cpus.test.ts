import { test } from 'node:test'
import assert from 'node:assert/strict'
import { cpuCount } from '../../server/config/cpus.js'

const ROOT = '/fakeroot'

/** A fake filesystem rooted at ROOT: keys are paths below the root, without a leading slash. */
function fakeFs(files: Record<string, string>): { read: (path: string) => string | null; reads: string[] } {
  const reads: string[] = []
  const read = (path: string): string | null => {
    reads.push(path)
    assert.ok(path.startsWith(ROOT + '/'), `read outside the fake root: ${path}`)
    return files[path.slice(ROOT.length + 1)] ?? null
  }
  return { read, reads }
}

test('cgroup v2 "max 100000" (no quota) leaves the affinity count', () => {
  const { read, reads } = fakeFs({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/cpu.max': 'max 100000\n' })
  assert.deepEqual(cpuCount(ROOT, read, 8), { count: 8, source: 'affinity', affinity: 8, quota: null })
  assert.ok(reads.includes(`${ROOT}/sys/fs/cgroup/cpu.max`))
})

test('cgroup v2 quota of one CPU on a 64-CPU host gives 1 (source cgroup-v2)', () => {
  const { read } = fakeFs({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/cpu.max': '100000 100000\n' })
  assert.deepEqual(cpuCount(ROOT, read, 64), { count: 1, source: 'cgroup-v2', affinity: 64, quota: 1 })
})

test('cgroup v2 fractional quota 1.5 CPUs rounds up to 2', () => {
  const { read } = fakeFs({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/cpu.max': '150000 100000\n' })
  assert.deepEqual(cpuCount(ROOT, read, 64), { count: 2, source: 'cgroup-v2', affinity: 64, quota: 1.5 })
})

test('cgroup v2 quota below one CPU still gives 1 worker', () => {
  const { read } = fakeFs({ 'sys/fs/cgroup/cpu.max': '50000 100000' })
  assert.deepEqual(cpuCount(ROOT, read, 4), { count: 1, source: 'cgroup-v2', affinity: 4, quota: 0.5 })
})

test('cgroup v2 quota larger than the affinity: affinity wins', () => {
  const { read } = fakeFs({ 'proc/self/cgroup': '0::/\n', 'sys/fs/cgroup/cpu.max': '800000 100000\n' })
  assert.deepEqual(cpuCount(ROOT, read, 4), { count: 4, source: 'affinity', affinity: 4, quota: 8 })
})

test('cgroup v2 nested group: the smallest quota along the path from /proc/self/cgroup wins', () => {
  const { read, reads } = fakeFs({
    'proc/self/cgroup': '0::/kubepods/pod1/ctr\n',
    'sys/fs/cgroup/kubepods/pod1/ctr/cpu.max': 'max 100000\n',
    'sys/fs/cgroup/kubepods/pod1/cpu.max': '200000 100000\n',
    'sys/fs/cgroup/kubepods/cpu.max': '800000 100000\n',
    'sys/fs/cgroup/cpu.max': 'max 100000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 64), { count: 2, source: 'cgroup-v2', affinity: 64, quota: 2 })
  for (const dir of ['kubepods/pod1/ctr/', 'kubepods/pod1/', 'kubepods/', '']) {
    assert.ok(reads.includes(`${ROOT}/sys/fs/cgroup/${dir}cpu.max`), `did not read ${dir}cpu.max`)
  }
})

test('cgroup v2 nested group: a smaller quota on the leaf beats a larger ancestor', () => {
  const { read } = fakeFs({
    'proc/self/cgroup': '0::/system.slice/app.service\n',
    'sys/fs/cgroup/system.slice/app.service/cpu.max': '300000 100000\n',
    'sys/fs/cgroup/system.slice/cpu.max': '600000 100000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 16), { count: 3, source: 'cgroup-v2', affinity: 16, quota: 3 })
})

test('cgroup v2 group path missing under a namespaced mount: the mount root quota is used', () => {
  const { read } = fakeFs({
    'proc/self/cgroup': '0::/docker/abc123\n',
    'sys/fs/cgroup/cpu.max': '200000 100000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 32), { count: 2, source: 'cgroup-v2', affinity: 32, quota: 2 })
})

test('cgroup v1 cpu.cfs_quota_us / cpu.cfs_period_us gives the quota (source cgroup-v1)', () => {
  const { read } = fakeFs({
    'proc/self/cgroup': '12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n',
    'sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_quota_us': '250000\n',
    'sys/fs/cgroup/cpu,cpuacct/docker/abc/cpu.cfs_period_us': '100000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 64), { count: 3, source: 'cgroup-v1', affinity: 64, quota: 2.5 })
})

test('cgroup v1 quota at the mount root (cpu controller directory)', () => {
  const { read } = fakeFs({
    'proc/self/cgroup': '4:cpu,cpuacct:/\n',
    'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '100000\n',
    'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 8), { count: 1, source: 'cgroup-v1', affinity: 8, quota: 1 })
})

test('cgroup v1 quota -1 (unlimited) leaves the affinity count', () => {
  const { read } = fakeFs({
    'proc/self/cgroup': '4:cpu,cpuacct:/\n',
    'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us': '-1\n',
    'sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us': '100000\n',
    'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '-1\n',
    'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 12), { count: 12, source: 'affinity', affinity: 12, quota: null })
})

test('cgroup v1 nested group: an ancestor with a smaller quota wins', () => {
  const { read } = fakeFs({
    'proc/self/cgroup': '3:cpu:/parent/child\n',
    'sys/fs/cgroup/cpu/parent/child/cpu.cfs_quota_us': '-1\n',
    'sys/fs/cgroup/cpu/parent/child/cpu.cfs_period_us': '100000\n',
    'sys/fs/cgroup/cpu/parent/cpu.cfs_quota_us': '50000\n',
    'sys/fs/cgroup/cpu/parent/cpu.cfs_period_us': '50000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 64), { count: 1, source: 'cgroup-v1', affinity: 64, quota: 1 })
})

test('a cgroup v2 quota is preferred over v1 files', () => {
  const { read } = fakeFs({
    'proc/self/cgroup': '0::/\n',
    'sys/fs/cgroup/cpu.max': '200000 100000\n',
    'sys/fs/cgroup/cpu/cpu.cfs_quota_us': '100000\n',
    'sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000\n',
  })
  assert.deepEqual(cpuCount(ROOT, read, 64), { count: 2, source: 'cgroup-v2', affinity: 64, quota: 2 })
})

test('no cgroup files at all: the affinity count', () => {
  const { read, reads } = fakeFs({})
  assert.deepEqual(cpuCount(ROOT, read, 6), { count: 6, source: 'affinity', affinity: 6, quota: null })
  assert.ok(reads.length > 0, 'expected the fake filesystem to be consulted')
})

test('garbage in cpu.max is ignored', () => {
  const { read } = fakeFs({ 'sys/fs/cgroup/cpu.max': 'nonsense here\n' })
  assert.deepEqual(cpuCount(ROOT, read, 6), { count: 6, source: 'affinity', affinity: 6, quota: null })
})

test('an affinity of 0 still gives at least one worker', () => {
  const { read } = fakeFs({})
  assert.equal(cpuCount(ROOT, read, 0).count, 1)
})
