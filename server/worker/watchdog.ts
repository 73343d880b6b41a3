/**
 * Watchdog thread of a worker. The main thread bumps a tick counter every `intervalMs`; when the
 * counter stops moving for longer than `thresholdMs`, the event loop is blocked, and this thread
 * writes a stall report (with every in-flight request) to the arbiter's pipe, repeating while the
 * block lasts. The arbiter decides when to kill (FORKYARD_TIMEOUT) and names those requests.
 */
import { writeSync } from 'node:fs'
import { workerData } from 'node:worker_threads'
import { STALL_FD, type StallReport } from '../arbiter/ipc.js'
import { InflightTable } from './inflight.js'

interface WatchdogData {
  sab: SharedArrayBuffer
  intervalMs: number
  thresholdMs: number
}

const { sab, intervalMs, thresholdMs } = workerData as WatchdogData
const table = new InflightTable(sab)
let lastTicks = table.ticks()
let lastChange = Date.now()

setInterval(() => {
  const now = Date.now()
  const ticks = table.ticks()
  if (ticks !== lastTicks) {
    lastTicks = ticks
    lastChange = now
    return
  }
  const blockedMs = now - lastChange
  if (blockedMs < thresholdMs) return
  const report: StallReport = { t: 'stall', blockedMs, ...table.snapshot(now) }
  try {
    writeSync(STALL_FD, JSON.stringify(report) + '\n')
  } catch {
    // EAGAIN (pipe full) or EPIPE (arbiter gone): the next report, or the kill, follows anyway.
  }
}, intervalMs)
