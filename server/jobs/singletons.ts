/**
 * Runs each declared singleton once per deployment, in a jobs process, by a lease (leases.ts):
 * embedded, a pidfile (<run dir>/singleton-<name>.pid) refuses a second copy on the host; with the
 * Redis engine, a lease in Redis gives it to one host's jobs process at a time and moves it when
 * that host dies. The holder's start() gets a fencing token (ctx.fencingToken, see leases.ts) and
 * an AbortSignal, aborted (then its stop() awaited) when it loses the lease or the process stops.
 * A singleton whose start() rejects (crashes) is restarted with backoff (0.5 s doubling to 30 s).
 */
import { hostname } from 'node:os'
import type { Logger } from 'pino'
import { publish } from '../publish.js'
import { leaseMargin, leaseRunOut, parseHolder, type Leases } from './leases.js'
import { singletonDefinitions } from './registry.js'

export interface SingletonState {
  /** running: held and started here; standby: another host (or process) holds it (`holder`). */
  state: 'starting' | 'running' | 'backoff' | 'refused' | 'standby' | 'stopped'
  pid: number
  restarts: number
  since: string
  error?: string
  /** Who holds it: <host>:<pid>[:<token>]. */
  holder?: string
  fencingToken?: number
}

interface Slot {
  token: number | null
  /** When the last successful renew (or the acquire) was sent, on this process's clock. */
  renewedAt: number
  abort: AbortController | null
  stop: (() => unknown) | null
  restartTimer: NodeJS.Timeout | null
  tick: NodeJS.Timeout | null
  /** Fires when the lease would run out (minus the margin) without a successful renew. */
  deadline: NodeJS.Timeout | null
  restarts: number
  lastHolder: string
}

export class Singletons {
  readonly states = new Map<string, SingletonState>()
  private readonly slots = new Map<string, Slot>()
  private stopping = false

  constructor(
    private readonly leases: Leases,
    private readonly log: Logger,
  ) {}

  start(): void {
    for (const name of singletonDefinitions.keys()) {
      this.slots.set(name, { token: null, renewedAt: 0, abort: null, stop: null, restartTimer: null, tick: null, deadline: null, restarts: 0, lastHolder: '' })
      this.set(name, { state: 'standby', restarts: 0, error: 'not acquired yet' })
      void this.tick(name)
    }
  }

  private set(name: string, s: Omit<SingletonState, 'pid' | 'since'>): void {
    this.states.set(name, { ...s, pid: process.pid, since: new Date().toISOString() })
  }

  private schedule(name: string, ms: number): void {
    const slot = this.slots.get(name)!
    if (this.stopping) return
    slot.tick = setTimeout(() => void this.tick(name), ms)
  }

  /** Gives the lease up on this process's clock, lease - margin after the last successful renew was sent. */
  private arm(name: string): void {
    const slot = this.slots.get(name)!
    if (slot.deadline !== null) clearTimeout(slot.deadline)
    slot.deadline = null
    if (this.leases.renewEveryMs === null || slot.token === null) return
    const token = slot.token
    const ms = slot.renewedAt + this.leases.leaseMs - leaseMargin(this.leases.leaseMs) - Date.now()
    slot.deadline = setTimeout(() => {
      slot.deadline = null
      if (slot.token === token && !this.stopping) void this.lose(name, `lease not renewed for ${Date.now() - slot.renewedAt} ms (lease ${this.leases.leaseMs} ms): another host may take it`)
    }, Math.max(0, ms))
  }

  private async tick(name: string): Promise<void> {
    const slot = this.slots.get(name)!
    const log = this.log.child({ singleton: name })
    const every = this.leases.renewEveryMs ?? this.leases.leaseMs
    if (this.stopping) return
    if (slot.token !== null) {
      if (this.leases.renewEveryMs === null) return // a pidfile is held until death: nothing to renew
      if (leaseRunOut(slot.renewedAt, Date.now(), this.leases.leaseMs)) {
        await this.lose(name, `lease not renewed for ${Date.now() - slot.renewedAt} ms (lease ${this.leases.leaseMs} ms): another host may take it`)
        this.schedule(name, every)
        return
      }
      const sent = Date.now()
      try {
        const token = slot.token
        const ok = await withTimeout(this.leases.renew(name, token), every)
        if (slot.token !== token) {
          // given up meanwhile (the deadline fired): the next tick acquires again
        } else if (ok) {
          slot.renewedAt = sent
          this.arm(name)
        } else await this.lose(name, 'lease taken by another holder')
      } catch (err) {
        log.warn({ err: { message: (err as Error).message }, fencingToken: slot.token, msLeft: this.leases.leaseMs - (Date.now() - slot.renewedAt) }, 'singleton lease could not be renewed: trying again')
      }
      this.schedule(name, every)
      return
    }
    const sent = Date.now()
    try {
      const r = await withTimeout(this.leases.acquire(name), every)
      if (this.stopping) {
        if ('token' in r) await this.leases.release(name, r.token).catch(() => undefined)
        return
      }
      if ('token' in r) {
        slot.token = r.token
        slot.renewedAt = sent
        slot.lastHolder = ''
        this.arm(name)
        log.info({ fencingToken: r.token }, 'singleton lease acquired')
        this.launch(name)
      } else {
        const state = this.leases.renewEveryMs === null ? 'refused' : 'standby'
        if (slot.lastHolder !== r.holder) {
          const h = parseHolder(r.holder)
          if (state === 'refused') log.error({ holder: r.holder }, 'singleton already runs in another process: not started here (two would be an error)')
          else log.info({ holder: r.holder, fencingToken: h?.token }, 'singleton held by another host: standing by')
        }
        slot.lastHolder = r.holder
        this.set(name, { state, restarts: slot.restarts, holder: r.holder, ...(state === 'refused' ? { error: `already running in pid ${parseHolder(`${r.holder}:0`)?.pid ?? r.holder}` } : {}) })
      }
    } catch (err) {
      this.set(name, { state: 'standby', restarts: slot.restarts, error: `engine not reachable: ${(err as Error).message}` })
    }
    this.schedule(name, every)
  }

  private launch(name: string): void {
    const slot = this.slots.get(name)!
    if (this.stopping || slot.token === null) return
    const token = slot.token
    const start = singletonDefinitions.get(name)!
    const log = this.log.child({ singleton: name, fencingToken: token })
    const abort = new AbortController()
    slot.abort = abort
    slot.stop = null
    const restarts = slot.restarts
    this.set(name, { state: 'starting', restarts, fencingToken: token })
    const crashed = (err: unknown): void => {
      if (this.stopping || abort.signal.aborted) return
      abort.abort()
      const delay = Math.min(30_000, 500 * 2 ** restarts)
      slot.restarts = restarts + 1
      this.set(name, { state: 'backoff', restarts: restarts + 1, fencingToken: token, error: (err as Error)?.message ?? String(err) })
      log.error({ err, restartInMs: delay, restarts: restarts + 1 }, 'singleton crashed: restarting')
      slot.restartTimer = setTimeout(() => {
        slot.restartTimer = null
        if (slot.token === token) this.launch(name)
      }, delay)
    }
    try {
      const result = start({ signal: abort.signal, log, fencingToken: token, publish: (channel, data, options) => publish(channel, data, options) })
      Promise.resolve(result).then(
        (stop) => {
          if (typeof stop !== 'function') return
          // Lost or stopped while start() was still resolving: stop it now.
          if (abort.signal.aborted) void Promise.resolve().then(() => (stop as () => unknown)()).catch(() => undefined)
          else slot.stop = stop as () => unknown
        },
        crashed,
      )
      this.set(name, { state: 'running', restarts, fencingToken: token, holder: `${hostname()}:${process.pid}:${token}` })
      log.info({ restarts }, 'singleton started')
    } catch (err) {
      crashed(err)
    }
  }

  /** Stops this copy: the signal first, then its stop() awaited. */
  private async halt(name: string): Promise<void> {
    const slot = this.slots.get(name)!
    if (slot.restartTimer !== null) clearTimeout(slot.restartTimer)
    slot.restartTimer = null
    slot.abort?.abort()
    const stop = slot.stop
    slot.stop = null
    slot.abort = null
    try {
      await stop?.()
    } catch (err) {
      this.log.error({ err, singleton: name }, 'singleton stop() failed')
    }
  }

  private async lose(name: string, why: string): Promise<void> {
    const slot = this.slots.get(name)!
    const token = slot.token
    slot.token = null
    if (slot.deadline !== null) clearTimeout(slot.deadline)
    slot.deadline = null
    this.log.warn({ singleton: name, fencingToken: token, why }, 'singleton lease lost: stopping it here')
    await this.halt(name)
    this.set(name, { state: 'standby', restarts: slot.restarts, error: why })
  }

  async stop(): Promise<void> {
    this.stopping = true
    for (const [name, slot] of this.slots) {
      if (slot.tick !== null) clearTimeout(slot.tick)
      if (slot.deadline !== null) clearTimeout(slot.deadline)
      const token = slot.token
      await this.halt(name)
      if (token !== null) {
        slot.token = null
        await withTimeout(this.leases.release(name, token), 1000).catch(() => undefined)
        this.log.info({ singleton: name }, 'singleton stopped')
      }
      this.set(name, { state: 'stopped', restarts: slot.restarts })
    }
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
    }),
  ])
}
