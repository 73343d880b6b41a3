/**
 * `forkyard top` (make top): `forkyard ps` redrawn every interval, like `pm2 monit` or top(1), with
 * the stack's totals. On a terminal each frame replaces the last; piped, frames follow each other.
 */
import { collectStack, formatCollected, type StackStatus } from './status.js'

export interface TopOptions {
  intervalMs: number
  /** Frames to draw before returning; null: until interrupted. */
  count: number | null
  tty: boolean
  write: (s: string) => void
  /** supervisord's pid now, or null while the stack is down (top waits for it). */
  supervisord: () => number | null
}

/** One line under the table: what the whole stack uses. */
export function totals(status: StackStatus): string {
  let cpu = 0
  let rss = 0
  for (const p of status.processes) {
    cpu += p.cpuPercent ?? 0
    rss += p.rssBytes ?? 0
  }
  return `total: ${status.processes.length} processes, CPU ${cpu.toFixed(1)}%, memory ${(rss / 1048576).toFixed(1)}M\n`
}

export async function top(paths: { runDir: string; logDir: string }, o: TopOptions): Promise<void> {
  // CPU% over most of the interval, as top(1) measures it, but a frame at least every interval.
  const sampleMs = Math.max(100, Math.min(o.intervalMs - 50, 1000))
  for (let frame = 0; o.count === null || frame < o.count; frame++) {
    const started = performance.now()
    const pid = o.supervisord()
    let body: string
    if (pid === null) body = 'the stack is not running (make up); waiting for it\n'
    else {
      const c = await collectStack(paths, pid, sampleMs)
      body = formatCollected(c, totals(c.status))
    }
    const head = `forkyard top: ${new Date().toLocaleTimeString()}, every ${o.intervalMs / 1000}s${o.tty ? ' (Ctrl-C quits)' : ''}\n\n`
    o.write((o.tty ? '\x1b[H\x1b[2J' : frame > 0 ? '\n' : '') + head + body)
    if (o.count !== null && frame + 1 >= o.count) break
    const left = o.intervalMs - (performance.now() - started)
    if (left > 0) await new Promise((r) => setTimeout(r, left))
  }
}
