/**
 * HTTP as a user would compare it (`make bench`): the same hello-world listener (bench/hello.mjs)
 * behind the kit's own nginx configuration, access log to a file, keep-alive:
 *   - cluster: bare node:cluster with the same worker count, scheduling none (the anchor: what a
 *     user would run instead, behind the same nginx);
 *   - serve: `forkyard serve` with its defaults (its own access log, request ids, watchdog);
 *   - stack: the stack as shipped, `forkyard up` with the hello app (nginx writes the access log,
 *     the workers do not log each request again; push, bridge and jobs idle beside it).
 *
 *   node --import tsx bench/http.ts [--duration 10] [--connections 64] [--threads 2] [--rounds 3]
 *       [--only cluster,serve,stack]   (in that order; also serve-nolog, serve-supervised and
 *                                      stack-nojobs, to take the kit's overhead apart)
 *
 * Each configuration runs alone: started, warmed up, measured, stopped; round after round, so
 * drift of the shared machine hits each alike; each row is the configuration's median round. The
 * stack's round also measures a rolling reload under keep-alive POST load. Only ratios to the anchor within one run mean anything on a shared 2-core machine: wrk,
 * nginx and the workers compete for the same cores, as they do in the measurement. The
 * CPU time of every process of each configuration is read from /proc around each run, to show
 * where the time goes. Writes bench/results/http-<date>.json.
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { availableParallelism, cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { benchCpuMs, machineCpuMs, positiveInt, run, sleep, runBench, treeCpuMs } from './lib/proc.js'
import { ANCHOR, QUIET, formatReport, ratiosOf, summarize, type Row } from './lib/report.js'
import { startCluster, startServe, startStack, type RunningServer } from './lib/servers.js'
import { wrk, type WrkResult } from './lib/wrk.js'

const WARMUP_S = 2
const MAX_ATTEMPTS = 3

const { values } = parseArgs({
  options: {
    duration: { type: 'string', default: '10' },
    connections: { type: 'string', default: '64' },
    threads: { type: 'string', default: '2' },
    rounds: { type: 'string', default: '3' },
    only: { type: 'string' },
  },
})
const durationS = positiveInt('duration', values.duration)
const connections = positiveInt('connections', values.connections)
const threads = positiveInt('threads', values.threads)
const rounds = positiveInt('rounds', values.rounds)
const workers = availableParallelism()

interface Plan {
  key: string
  label: string
  start: (dir: string) => Promise<RunningServer>
  optional?: boolean
}

const plans: Plan[] = [
  { key: ANCHOR, label: 'nginx + bare node:cluster', start: (d) => startCluster(d, workers) },
  { key: 'serve', label: 'nginx + forkyard serve', start: (d) => startServe(d, workers) },
  { key: 'stack', label: 'forkyard up (as shipped)', start: (d) => startStack(d, workers) },
  // Not in the default run (--only): what the workers' own access line costs, what the jobs process costs.
  { key: 'serve-supervised', label: 'nginx + forkyard serve --supervised (access log auto: off)', start: (d) => startServe(d, workers, {}, ['--supervised']), optional: true },
  { key: 'stack-nojobs', label: 'forkyard up, FORKYARD_JOBS=false', start: (d) => startStack(d, workers, { FORKYARD_JOBS: 'false' }), optional: true },
  { key: 'serve-nolog', label: 'nginx + forkyard serve, FORKYARD_ACCESS_LOG=false', start: (d) => startServe(d, workers, { FORKYARD_ACCESS_LOG: 'false' }), optional: true },
]

/** A readable name for a process of a configuration, from its command line. */
function kind(comm: string, isRoot: boolean): string {
  if (comm.startsWith('nginx: ')) return comm.replace(/ process.*$/, '')
  const fy = /dist\/bin\/forkyard\.js (\w+)/.exec(comm)
  if (fy !== null) return fy[1] === 'serve' ? 'arbiter' : `forkyard ${fy[1]}`
  if (comm.includes('bare-cluster.mjs')) return isRoot ? 'cluster primary' : 'cluster worker'
  if (comm.includes('supervisord')) return 'supervisord'
  if (comm.includes('jobs')) return 'jobs'
  return 'worker'
}

async function measureOnce(plan: Plan, round: number, server: RunningServer): Promise<Row> {
  const roots = server.roots()
  const cpu0 = treeCpuMs(roots)
  const machine0 = machineCpuMs()
  const bench0 = benchCpuMs()
  const t0 = performance.now()
  const result = await wrk(server.url, { connections, threads, seconds: durationS })
  const elapsed = performance.now() - t0
  const bench1 = benchCpuMs()
  const machine1 = machineCpuMs()
  const cpu1 = treeCpuMs(roots)
  const byProcess: Record<string, number> = {}
  let total = 0
  for (const [pid, { ms, comm }] of cpu1) {
    const used = ms - (cpu0.get(pid)?.ms ?? 0)
    total += used
    const k = process.env.BENCH_PIDS === '1' ? `${kind(comm, roots.includes(pid))}[${pid}]` : kind(comm, roots.includes(pid))
    byProcess[k] = (byProcess[k] ?? 0) + (100 * used) / elapsed
  }
  const othersMs = machine1.busy - machine0.busy - total - (bench1 - bench0)
  const otherLoad = Math.max(0, othersMs) / Math.max(1, machine1.total - machine0.total)
  return { key: plan.key, label: plan.label, round, ...result, cpuUsPerRequest: (total * 1000) / Math.max(1, result.requests), cpuByProcess: byProcess, otherLoad }
}

async function measure(plan: Plan, round: number, server: RunningServer): Promise<Row> {
  await wrk(server.url, { connections, threads, seconds: WARMUP_S })
  let best: Row | null = null
  for (let attempt = 1; attempt <= MAX_ATTEMPTS; attempt++) {
    await sleep(1000)
    const row = await measureOnce(plan, round, server)
    if (best === null || row.otherLoad < best.otherLoad) best = row
    if (row.otherLoad <= QUIET) break
    process.stderr.write(`  other processes used ${Math.round(row.otherLoad * 100)}% of the CPUs${attempt < MAX_ATTEMPTS ? ', measuring again' : ''}\n`)
  }
  return best!
}

/**
 * A rolling reload under keep-alive POST load (nginx never retries a POST, so wrk counts every
 * failure): the reload is asked 3 s into an 8 s run, and the run's slowest request is its cost
 * (the goal: 0 failed, at most 50 ms).
 */
async function measureReload(server: RunningServer): Promise<WrkResult> {
  const load = wrk(server.url, { connections: 16, threads: 1, seconds: 8, script: fileURLToPath(new URL('post.lua', import.meta.url)) })
  await sleep(3000)
  await server.reload!()
  const r = await load
  process.stderr.write(`  reload under POST load: ${r.requests} requests, ${r.socketErrors + r.non2xx} failed, slowest ${r.maxMs} ms, p99 ${r.p99Ms} ms\n`)
  return r
}

async function main(): Promise<void> {
  const only = values.only?.split(',')
  // In the order given: each round measures them in that order.
  const chosen = only === undefined ? plans.filter((p) => p.optional !== true) : plans.filter((p) => only.includes(p.key)).sort((a, b) => only.indexOf(a.key) - only.indexOf(b.key))
  if (chosen.length === 0) throw new Error(`--only: expected some of ${plans.map((p) => p.key).join(',')}`)
  const runs: Row[] = []
  const reloads: Array<{ round: number } & WrkResult> = []
  const logBytes: Record<string, Record<string, number | null>> = {}
  // Each configuration runs alone (started, measured, stopped), round after round: idle processes
  // of the others would otherwise wake up beside it (the stack measured 0.81 with three other
  // configurations idle beside it, 0.96 with one).
  for (let round = 1; round <= rounds; round++) {
    for (const plan of chosen) {
      const dir = mkdtempSync(join(tmpdir(), `forkyard-bench-${plan.key}-`))
      let server: RunningServer | null = null
      try {
        server = await plan.start(dir)
        const row = await measure(plan, round, server)
        runs.push(row)
        process.stderr.write(`round ${round}/${rounds} ${plan.label}: ${Math.round(row.rps)} req/s, p99 ${row.p99Ms} ms, errors ${row.socketErrors + row.non2xx}\n`)
        if (server.reload !== undefined) reloads.push({ round, ...(await measureReload(server)) })
        logBytes[plan.key] = Object.fromEntries(server.logFiles.map((f) => [f.split('/').pop()!, sizeOf(f)]))
      } finally {
        await server?.stop()
        rmSync(dir, { recursive: true, force: true })
      }
    }
  }
  const rows = summarize(runs)
  const ratios = ratiosOf(rows, runs)
  process.stdout.write(formatReport(rows, ratios))
  if (reloads.length > 0) {
    process.stdout.write('\nRolling reload of the stack under keep-alive POST load (wrk -c16, reload at 3 s of 8 s)\n')
    for (const r of reloads) process.stdout.write(`  round ${r.round}: ${r.requests} POSTs, ${r.socketErrors + r.non2xx} failed, slowest ${r.maxMs} ms (goal <= 50), p99 ${r.p99Ms} ms\n`)
  }
  const wrkVersion = await run('wrk', ['-v'], 5000)
  const date = new Date()
  const results = {
    date: date.toISOString(),
    machine: { cpus: availableParallelism(), cpuModel: cpus()[0]?.model ?? null, node: process.version, wrk: (wrkVersion.stdout + wrkVersion.stderr).split('\n')[0] ?? '' },
    settings: { workers, durationS, warmupS: WARMUP_S, connections, threads, rounds, quiet: QUIET },
    rows,
    ratios,
    reloads,
    logBytes,
    runs,
  }
  const dir = fileURLToPath(new URL('results/', import.meta.url))
  mkdirSync(dir, { recursive: true })
  const file = join(dir, `http-${date.toISOString().slice(0, 19).replace(/:/g, '-')}.json`)
  writeFileSync(file, JSON.stringify(results, null, 2) + '\n')
  process.stdout.write(`\nResults written to ${file}\n`)
}

function sizeOf(path: string): number | null {
  try {
    return statSync(path).size
  } catch {
    return null
  }
}

// Ctrl-C or a kill: the processes started are stopped before going.
await runBench(main)
