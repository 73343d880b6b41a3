/**
 * Who may run a singleton, per FORKYARD_ENGINE, with a fencing token: a number that grows every
 * time the singleton changes hands (per name, across the deployment). A singleton that writes to a
 * shared store passes its ctx.fencingToken with each write, and the store refuses a token lower
 * than the highest it has seen: a holder that was paused (GC, a frozen VM, a partition) past its
 * lease and does not know yet that another took over cannot overwrite the new holder's work.
 *   embedded  a pidfile in the run directory (one holder per host, released by death); the token is
 *             a counter file next to it, incremented by the pidfile's holder.
 *   redis     a lease: `<prefix>singleton:<name>` = `<host>:<pid>:<token>`, SET NX PX <lease>, the
 *             token from INCR `<prefix>singleton:<name>:fence`; renewed every lease/3 by a compare
 *             and PEXPIRE. A holder that has not renewed for lease - margin (its own clock, from
 *             when the last successful renew was sent) stops its singleton before anyone else can
 *             take it; non-holders try every lease/3, so a dead holder is replaced within about a
 *             lease.
 */
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import { join } from 'node:path'
import type { Redis } from 'ioredis'
import { claimPidfile, removePidfile } from '../process/pidfile.js'

export type Acquired = { token: number } | { holder: string }

export interface Leases {
  /** Renewal period in ms; null when holding needs no renewal (pidfile). */
  readonly renewEveryMs: number | null
  readonly leaseMs: number
  acquire(name: string): Promise<Acquired>
  /** true: still ours; false: lost (another holds it). Throws when the engine cannot be reached. */
  renew(name: string, token: number): Promise<boolean>
  release(name: string, token: number): Promise<void>
}

/** Margin kept before the lease runs out (clock drift, a slow command): a fifth of the lease. */
export function leaseMargin(leaseMs: number): number {
  return Math.floor(leaseMs / 5)
}

/** Whether a holder whose last successful renew was sent at lastRenewSentAt must give up now. */
export function leaseRunOut(lastRenewSentAt: number, now: number, leaseMs: number): boolean {
  return now - lastRenewSentAt >= leaseMs - leaseMargin(leaseMs)
}

/** The lease value `<host>:<pid>:<token>` (host names have no colon; a bad value gives null). */
export function parseHolder(value: string): { host: string; pid: number; token: number } | null {
  const m = /^(.*):(\d+):(\d+)$/.exec(value)
  return m === null ? null : { host: m[1]!, pid: Number(m[2]), token: Number(m[3]) }
}

export function holderValue(token: number, host = hostname(), pid = process.pid): string {
  return `${host}:${pid}:${token}`
}

// KEYS[1] lease, KEYS[2] fence; ARGV[1] holder prefix (host:pid:), ARGV[2] lease ms, ARGV[3] highest token seen.
// The token is above every token seen (a Redis restarted without its data starts its counter again).
const ACQUIRE = `
local cur = redis.call('GET', KEYS[1])
if cur then return {0, cur} end
local t = redis.call('INCR', KEYS[2])
local seen = tonumber(ARGV[3])
if t <= seen then t = seen + 1; redis.call('SET', KEYS[2], t) end
redis.call('SET', KEYS[1], ARGV[1] .. t, 'PX', ARGV[2])
return {1, tostring(t)}`

// Ours: extended. Gone (Redis restarted without data): ours again, if nobody took it meanwhile.
const RENEW = `
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
if cur then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
local f = tonumber(redis.call('GET', KEYS[2]) or '0')
if f < tonumber(ARGV[3]) then redis.call('SET', KEYS[2], ARGV[3]) end
return 1`

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

export class RedisLeases implements Leases {
  readonly renewEveryMs: number
  private readonly seen = new Map<string, number>()

  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    readonly leaseMs: number,
  ) {
    this.renewEveryMs = Math.max(100, Math.floor(leaseMs / 3))
  }

  private keys(name: string): [string, string] {
    return [`${this.prefix}singleton:${name}`, `${this.prefix}singleton:${name}:fence`]
  }

  async acquire(name: string): Promise<Acquired> {
    const [lease, fence] = this.keys(name)
    const r = (await this.redis.eval(ACQUIRE, 2, lease, fence, `${hostname()}:${process.pid}:`, String(this.leaseMs), String(this.seen.get(name) ?? 0))) as [number, string]
    if (r[0] === 1) {
      const token = Number(r[1])
      this.seen.set(name, token)
      return { token }
    }
    const h = parseHolder(r[1])
    if (h !== null && h.token > (this.seen.get(name) ?? 0)) this.seen.set(name, h.token)
    return { holder: r[1] }
  }

  async renew(name: string, token: number): Promise<boolean> {
    const [lease, fence] = this.keys(name)
    return (await this.redis.eval(RENEW, 2, lease, fence, holderValue(token), String(this.leaseMs), String(token))) === 1
  }

  async release(name: string, token: number): Promise<void> {
    const [lease] = this.keys(name)
    await this.redis.eval(RELEASE, 1, lease, holderValue(token))
  }
}

/** The embedded engine: a pidfile per singleton, and a counter file for its fencing token. */
export class PidfileLeases implements Leases {
  readonly renewEveryMs = null
  /** Non-holders try again this often (the holder's death frees the pidfile). */
  readonly leaseMs = 3000

  constructor(private readonly runDir: string) {}

  lockPath(name: string): string {
    return join(this.runDir, `singleton-${name}.pid`)
  }

  acquire(name: string): Promise<Acquired> {
    const other = claimPidfile(this.lockPath(name))
    if (other !== null) return Promise.resolve({ holder: holderValue(0, hostname(), other).replace(/:0$/, '') })
    // Only the pidfile's holder gets here: the counter needs no other lock.
    const file = join(this.runDir, `singleton-${name}.fence`)
    let n = 0
    try {
      n = Number(readFileSync(file, 'utf8').trim()) || 0
    } catch {
      // first time
    }
    const token = n + 1
    const tmp = `${file}.${process.pid}`
    const fd = openSync(tmp, 'w', 0o600)
    try {
      writeSync(fd, `${token}\n`)
      fsyncSync(fd)
    } finally {
      closeSync(fd)
    }
    renameSync(tmp, file)
    return Promise.resolve({ token })
  }

  renew(): Promise<boolean> {
    return Promise.resolve(true)
  }

  release(name: string): Promise<void> {
    removePidfile(this.lockPath(name))
    return Promise.resolve()
  }
}
