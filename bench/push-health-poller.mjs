// Polls each URL given as an argument every INTERVAL_MS (default 50) from its own process (the
// bench's, busy with 1,000 clients, would measure itself), until its stdin closes; then prints one
// JSON line: per URL the number of polls, answers other than 200, the slowest answer and the 99th
// percentile (ms), and how many took longer than 100 ms. No answer within 5 s counts as 5,000 ms.
const urls = process.argv.slice(2)
const interval = Number(process.env.INTERVAL_MS ?? 50)
let stop = false
process.stdin.on('end', () => (stop = true)).resume()
const times = new Map(urls.map((u) => [u, []]))
const bad = new Map(urls.map((u) => [u, 0]))
// Bounded: at most 20 minutes of polls.
for (let i = 0; !stop && i < (20 * 60_000) / interval; i++) {
  await Promise.all(
    urls.map(async (u) => {
      const t0 = performance.now()
      try {
        const res = await fetch(u, { signal: AbortSignal.timeout(5000) })
        await res.arrayBuffer()
        if (res.status !== 200) bad.set(u, bad.get(u) + 1)
        times.get(u).push(performance.now() - t0)
      } catch {
        bad.set(u, bad.get(u) + 1)
        times.get(u).push(5000)
      }
    }),
  )
  await new Promise((r) => setTimeout(r, interval))
}
const out = {}
for (const [u, t] of times) {
  const s = [...t].sort((a, b) => a - b)
  const path = new URL(u).pathname
  out[path] = { polls: s.length, notOk: bad.get(u), maxMs: s.at(-1) ?? null, p99Ms: s[Math.max(0, Math.ceil(0.99 * s.length) - 1)] ?? null, over100: s.filter((x) => x > 100).length }
}
process.stdout.write(JSON.stringify(out) + '\n')
