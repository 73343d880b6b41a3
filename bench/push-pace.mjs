// The message schedule of bench/push.ts, shared by its two generators (bench/push-publisher.mjs for
// forkyard, bench/ws-single.mjs for the single process) so both send on exactly the same timing.
import { setImmediate as turn, setTimeout as sleep } from 'node:timers/promises'

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export const wallMs = () => performance.timeOrigin + performance.now()

/**
 * Calls send(i, due) for i = 0 .. count-1; due is when message i was scheduled (wall-clock ms), or
 * null at unlimited rate.
 * rate > 0: message i is due at start + i / rate seconds (a fixed schedule, so timer lateness does
 *   not lower the rate: a late message is sent at once and the next ones catch up).
 * rate = 0: as fast as possible. When send returns a promise (an acknowledged publish), at most
 *   `window` are in flight; either way the event loop gets a turn every `yieldEvery` messages, so
 *   I/O (acknowledgements, socket writes) proceeds while the loop runs.
 * Resolves when every promise send returned has settled, with how many rejected.
 */
export async function paced({ count, rate, window = 1000, yieldEvery = 1, send }) {
  const start = performance.now()
  let inFlight = 0
  let failed = 0
  let wake = null
  const settled = () => {
    inFlight--
    if (wake !== null) {
      const w = wake
      wake = null
      w()
    }
  }
  for (let i = 0; i < count; i++) {
    const due = rate > 0 ? start + (i * 1000) / rate : null
    if (due !== null) {
      const wait = due - performance.now()
      // Timers have 1 ms granularity: sleep only when at least that early.
      if (wait >= 1) await sleep(wait)
      else if (i % 32 === 31) await turn()
    } else if (inFlight >= window) {
      await new Promise((resolve) => (wake = resolve))
    } else if (i % yieldEvery === yieldEvery - 1) {
      await turn()
    }
    const p = send(i, due === null ? null : performance.timeOrigin + due)
    if (p !== undefined) {
      inFlight++
      p.then(settled, () => {
        failed++
        settled()
      })
    }
  }
  // Bounded: a publish either is acknowledged or, once the publisher closes, rejected.
  while (inFlight > 0) await new Promise((resolve) => (wake = resolve))
  return { failed, sendMs: performance.now() - start }
}
