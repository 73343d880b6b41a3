/**
 * The requests a worker is serving, mirrored into a SharedArrayBuffer so the watchdog thread can
 * name them while the main thread's event loop is blocked (the main thread cannot answer then).
 *
 * Layout: header Int32[0] = loop tick counter, Int32[1] = requests not described (table full);
 * then SLOTS slots of { Int32 used, Int32 byteLength, Float64 startMs, SLOT_TEXT bytes of
 * "METHOD\treqId\tpath" }. Only the main thread writes; the watchdog reads when the main thread
 * is stuck, so there is no concurrent write to tear.
 */
import type { RequestSummary } from '../arbiter/ipc.js'

const SLOTS = 64
const SLOT_TEXT = 496 // SLOT_SIZE stays a multiple of 8 for the Float64 and Int32 fields
const HEADER = 16
const SLOT_SIZE = 16 + SLOT_TEXT

export const inflightBufferSize = HEADER + SLOTS * SLOT_SIZE

const encoder = new TextEncoder()
const decoder = new TextDecoder()

export class InflightTable {
  readonly sab: SharedArrayBuffer
  private readonly ints: Int32Array
  private readonly bytes: Uint8Array
  private readonly view: DataView
  private readonly free: number[] = []

  constructor(sab = new SharedArrayBuffer(inflightBufferSize)) {
    this.sab = sab
    this.ints = new Int32Array(sab)
    this.bytes = new Uint8Array(sab)
    this.view = new DataView(sab)
    for (let i = SLOTS - 1; i >= 0; i--) this.free.push(i)
  }

  /** Called by the main thread on a timer: proves the event loop turns. */
  tick(): void {
    Atomics.add(this.ints, 0, 1)
  }

  ticks(): number {
    return Atomics.load(this.ints, 0)
  }

  /** Returns a slot handle, or -1 when the table is full (the request is then only counted). */
  add(method: string, path: string, reqId: string, startMs: number): number {
    const slot = this.free.pop()
    if (slot === undefined) {
      Atomics.add(this.ints, 1, 1)
      return -1
    }
    const base = HEADER + slot * SLOT_SIZE
    // The path goes last: if a long (multi-byte) path overflows the slot, only its end is cut.
    const text = `${method}\t${reqId}\t${path.length > 300 ? path.slice(0, 300) : path}`
    const { written } = encoder.encodeInto(text, this.bytes.subarray(base + 16, base + 16 + SLOT_TEXT))
    this.view.setInt32(base + 4, written, true)
    this.view.setFloat64(base + 8, startMs, true)
    Atomics.store(this.ints, (base) / 4, 1)
    return slot
  }

  remove(slot: number): void {
    if (slot === -1) {
      Atomics.sub(this.ints, 1, 1)
      return
    }
    Atomics.store(this.ints, (HEADER + slot * SLOT_SIZE) / 4, 0)
    this.free.push(slot)
  }

  /** Every described request, oldest first, plus how many more were not described. */
  snapshot(nowMs: number): { requests: RequestSummary[]; more: number } {
    const requests: RequestSummary[] = []
    for (let slot = 0; slot < SLOTS; slot++) {
      const base = HEADER + slot * SLOT_SIZE
      if (Atomics.load(this.ints, base / 4) !== 1) continue
      const len = Math.min(this.view.getInt32(base + 4, true), SLOT_TEXT)
      const startMs = this.view.getFloat64(base + 8, true)
      // Copy out of shared memory first: TextDecoder refuses SharedArrayBuffer views.
      const text = decoder.decode(this.bytes.slice(base + 16, base + 16 + len))
      const [method = '', reqId = ''] = text.split('\t', 2)
      const path = text.slice(method.length + reqId.length + 2).replace(/\uFFFD$/, '')
      requests.push({ method, path, reqId, ageMs: Math.max(0, Math.round(nowMs - startMs)) })
    }
    requests.sort((a, b) => b.ageMs - a.ageMs)
    return { requests, more: Math.max(0, Atomics.load(this.ints, 1)) }
  }
}
