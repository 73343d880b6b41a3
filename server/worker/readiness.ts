/**
 * GET /readyz in a worker, without calling the app: one IPC question to the arbiter, which keeps
 * the picture of every component (arbiter/health.ts). No answer within a second is not ready.
 */
import type { Readiness } from '../arbiter/health.js'

export type { Readiness }

export class ReadinessCheck {
  private nextId = 0
  private readonly calls = new Map<number, (r: Readiness) => void>()

  constructor(private readonly ask: (id: number) => void) {}

  /** The arbiter's answer to question `id`. */
  answer(id: number, readiness: Readiness): void {
    this.calls.get(id)?.(readiness)
    this.calls.delete(id)
  }

  check(): Promise<Readiness> {
    // The arbiter is gone (this worker serves until the next one takes its socket over): not ready.
    if (!process.connected) return Promise.reject(new Error('the arbiter is gone: a new one is starting'))
    return new Promise((resolve, reject) => {
      const id = ++this.nextId
      const timer = setTimeout(() => {
        this.calls.delete(id)
        reject(new Error('the arbiter did not answer within 1000 ms'))
      }, 1000)
      this.calls.set(id, (r) => {
        clearTimeout(timer)
        resolve(r)
      })
      this.ask(id)
    })
  }
}
