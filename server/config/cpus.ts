/**
 * How many CPUs this process may really use: the smaller of the scheduler affinity
 * (os.availableParallelism) and the cgroup CPU quota. A 1-CPU container on a 64-core host
 * gets 1, not 64 (the quota is invisible to os.cpus()).
 *
 * cgroup v2: <mount>/<group>/cpu.max holds "quota period" or "max period" (kernel docs,
 * Documentation/admin-guide/cgroup-v2.rst). cgroup v1: cpu.cfs_quota_us / cpu.cfs_period_us.
 * Every ancestor group can cap the quota, so the smallest along the path wins.
 */
import { readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'

export interface CpuCount {
  count: number
  /** What decided the count, for the boot log line. */
  source: 'affinity' | 'cgroup-v2' | 'cgroup-v1'
  affinity: number
  quota: number | null
}

type Read = (path: string) => string | null

const readOrNull: Read = (path) => {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/** `root` and `read` exist for tests, which pass a fake filesystem. */
export function cpuCount(root = '/', read: Read = readOrNull, affinity = availableParallelism()): CpuCount {
  const v2 = quotaV2(root, read)
  const v1 = v2 === null ? quotaV1(root, read) : null
  const quota = v2 ?? v1
  if (quota !== null && Math.ceil(quota) < affinity) {
    return { count: Math.max(1, Math.ceil(quota)), source: v2 !== null ? 'cgroup-v2' : 'cgroup-v1', affinity, quota }
  }
  return { count: Math.max(1, affinity), source: 'affinity', affinity, quota }
}

/** Group paths from /proc/self/cgroup, e.g. "0::/system.slice/x.service" -> v2 path. */
function ownGroups(root: string, read: Read): { v2: string | null; v1cpu: string | null } {
  const text = read(join(root, 'proc/self/cgroup')) ?? ''
  let v2: string | null = null
  let v1cpu: string | null = null
  for (const line of text.split('\n')) {
    const [, controllers, path] = line.split(':')
    if (path === undefined || controllers === undefined) continue
    if (line.startsWith('0::')) v2 = path
    else if (controllers.split(',').includes('cpu')) v1cpu = path
  }
  return { v2, v1cpu }
}

function ancestors(path: string): string[] {
  const parts = path.split('/').filter((p) => p !== '')
  const out: string[] = []
  for (let i = parts.length; i >= 0; i--) out.push('/' + parts.slice(0, i).join('/'))
  return out
}

function minQuota(quotas: (number | null)[]): number | null {
  const real = quotas.filter((q): q is number => q !== null && q > 0)
  return real.length === 0 ? null : Math.min(...real)
}

function quotaV2(root: string, read: Read): number | null {
  const { v2 } = ownGroups(root, read)
  // In a container the group path often does not exist under the namespaced mount: check the
  // mount root too.
  const paths = v2 === null ? ['/'] : [...ancestors(v2), '/']
  const seen = new Set<string>()
  const quotas = paths.map((p) => {
    if (seen.has(p)) return null
    seen.add(p)
    const text = read(join(root, 'sys/fs/cgroup', p, 'cpu.max'))
    if (text === null) return null
    const [q, period] = text.trim().split(/\s+/)
    if (q === undefined || q === 'max' || period === undefined) return null
    return Number(q) / Number(period)
  })
  return minQuota(quotas)
}

function quotaV1(root: string, read: Read): number | null {
  const { v1cpu } = ownGroups(root, read)
  const bases = ['sys/fs/cgroup/cpu', 'sys/fs/cgroup/cpu,cpuacct']
  const quotas: (number | null)[] = []
  for (const base of bases) {
    for (const p of v1cpu === null ? ['/'] : [...ancestors(v1cpu), '/']) {
      const q = Number(read(join(root, base, p, 'cpu.cfs_quota_us'))?.trim() ?? NaN)
      const period = Number(read(join(root, base, p, 'cpu.cfs_period_us'))?.trim() ?? NaN)
      quotas.push(q > 0 && period > 0 ? q / period : null)
    }
  }
  return minQuota(quotas)
}
