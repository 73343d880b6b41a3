// Polls each URL given as an argument every INTERVAL_MS (default 50) from its own process (the
// bench's, busy with 1,000 clients, would measure itself), until its stdin closes; then prints one
// JSON line: per URL the number of polls, answers other than 200, the slowest answer and the 99th
// percentile (ms), and how many took longer than 100 ms. No answer within 5 s counts as 5,000 ms.
import { createServer } from 'node:http'

const urls = process.argv.slice(2)
// Node loads fetch's implementation at its first use (a few hundred ms on a busy machine): done
// here against a throwaway local server, not counted against the server under test.
{
  const warm = createServer((_req, res) => res.end('ok'))
  await new Promise((resolve) => warm.listen(0, '127.0.0.1', resolve))
  await (await fetch(`http://127.0.0.1:${warm.address().port}/`)).text()
  warm.close()
}
const interval = Number(process.env.INTERVAL_MS ?? 50)
let stop = false
process.stdin.on('end', () => (stop = true)).resume()
const times = new Map(urls.map((u) => [u, []]))
// SAMPLES=1: every poll as [start (wall-clock ms), duration ms, ok 1/0], for a caller that counts only part of the run.
const samples = new Map(urls.map((u) => [u, []]))
const bad = new Map(urls.map((u) => [u, 0]))
// Bounded: at most 20 minutes of polls.
for (let i = 0; !stop && i < (20 * 60_000) / interval; i++) {
  await Promise.all(
    urls.map(async (u) => {
      const t0 = performance.now()
      let ok = 0
      try {
        const res = await fetch(u, { signal: AbortSignal.timeout(5000) })
        await res.arrayBuffer()
        if (res.status !== 200) bad.set(u, bad.get(u) + 1)
        else ok = 1
        times.get(u).push(performance.now() - t0)
      } catch {
        bad.set(u, bad.get(u) + 1)
        times.get(u).push(5000)
      }
      samples.get(u).push([performance.timeOrigin + t0, performance.now() - t0, ok])
    }),
  )
  await new Promise((r) => setTimeout(r, interval))
}
const out = {}
for (const [u, t] of times) {
  const s = [...t].sort((a, b) => a - b)
  const path = new URL(u).pathname
  const slowestPoll = t.indexOf(s.at(-1))
  if (process.env.SAMPLES === '1') {
    out[path] = { samples: samples.get(u) }
    continue
  }
  out[path] = { polls: s.length, notOk: bad.get(u), maxMs: s.at(-1) ?? null, p99Ms: s[Math.max(0, Math.ceil(0.99 * s.length) - 1)] ?? null, over100: s.filter((x) => x > 100).length, slowestPoll, first: t.slice(0, 5).map((x) => Math.round(x)) }
}
process.stdout.write(JSON.stringify(out) + '\n')
