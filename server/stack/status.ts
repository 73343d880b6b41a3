/**
 * `forkyard ps` (`make status`) and `forkyard status`: one table (or one JSON document) for every
 * process of the stack, like `pm2 ls`: supervisord, nginx (the wrapper program, the master and
 * its workers), the arbiter ("server"), each worker, the jobs process, push and bridge.
 *
 * Where each column comes from:
 *   PID, STATE  supervisord's XML-RPC (getAllProcessInfo, on its control socket) for the programs;
 *               the arbiter's control socket for the workers and the jobs process; run/nginx.pid
 *               and /proc for the nginx master and its workers
 *   UPTIME, CPU, CPU TIME, MEM  /proc (process/proc-stats.ts), CPU% sampled over 250 ms
 *   ↺, LAST EXIT  for the programs, supervisord's log since its last start: supervisord keeps no
 *               restart count and its XML-RPC gives an exit status without the signal, while its
 *               log has one `spawned:` line per start and an `exited:`/`stopped:` line per exit
 *               with the signal; for the workers and the jobs process, the arbiter's counters
 *               (arbiter/restarts.ts)
 */
import { join } from 'node:path'
import { controlRequest, type ArbiterStatus } from '../arbiter/control.js'
import { describeExit, type LastExit } from '../arbiter/exits.js'
import { httpJson } from '../arbiter/health.js'
import { isAlive, readPid } from '../process/pidfile.js'
import { childrenOf, sampleProcs } from '../process/proc-stats.js'
import { parseSupervisorLog, readSupervisorLog } from './supervisor-log.js'

export interface ProcessRow {
  name: string
  role: string
  pid: number | null
  state: string
  uptimeMs: number | null
  cpuPercent: number | null
  cpuMs: number | null
  rssBytes: number | null
  /** null where nothing counts them (supervisord itself, the nginx master and workers). */
  restarts: number | null
  /** `at`: ISO 8601. */
  lastExit: { reason: string; at: string } | null
}

export interface StackStatus {
  processes: ProcessRow[]
}

type Planned = Pick<ProcessRow, 'name' | 'role' | 'pid' | 'state' | 'restarts' | 'lastExit'>



export interface ProgramInfo {
  name: string
  state: string
  pid: number
}

/** supervisor.getAllProcessInfo's answer: name, statename and pid of each program. */
export function parseProcessInfo(xml: string): ProgramInfo[] {
  const out: ProgramInfo[] = []
  for (const struct of xml.split('<struct>').slice(1)) {
    const field = (name: string, type: string): string | undefined => new RegExp(`<name>${name}</name>\\s*<value><${type}>([^<]*)</${type}></value>`).exec(struct)?.[1]
    const name = field('name', 'string')
    const state = field('statename', 'string')
    const pid = Number(field('pid', 'int') ?? field('pid', 'i4') ?? 0)
    if (name !== undefined && state !== undefined) out.push({ name, state, pid })
  }
  return out
}

async function programInfo(socketPath: string): Promise<ProgramInfo[]> {
  const body = '<?xml version="1.0"?><methodCall><methodName>supervisor.getAllProcessInfo</methodName><params></params></methodCall>'
  const { status, text } = await httpJson({ socketPath, path: '/RPC2', method: 'POST', body, headers: { 'Content-Type': 'text/xml' } }, 3000)
  if (status !== 200) throw new Error(`Expected 200 from supervisord's XML-RPC at ${socketPath}, got ${status}`)
  return parseProcessInfo(text)
}

function arbiterExit(e: LastExit | null | undefined): ProcessRow['lastExit'] {
  return e === null || e === undefined ? null : { reason: describeExit(e), at: new Date(e.at).toISOString() }
}

/** The workers (by slot) and the jobs process, from the arbiter's status. */
export function arbiterRows(s: ArbiterStatus): Planned[] {
  const workers = [...s.workers].sort((a, b) => (a.slot ?? a.worker) - (b.slot ?? b.worker) || a.worker - b.worker)
  const rows: Planned[] = workers.map((w) => ({ name: `server/w${w.slot ?? w.worker}`, role: 'worker', pid: w.pid, state: w.state, restarts: w.restarts ?? null, lastExit: arbiterExit(w.lastExit) }))
  const jobs = s.jobs ?? (s.jobsPid === null ? null : { pid: s.jobsPid, restarts: null, lastExit: null })
  if (jobs !== null) rows.push({ name: 'server/jobs', role: 'jobs', pid: jobs.pid, state: jobs.pid === null ? 'restarting' : 'running', restarts: jobs.restarts, lastExit: arbiterExit(jobs.lastExit) })
  return rows
}

/** /proc readings (CPU% over `sampleMs`) added to each planned row. */
async function measure(planned: Planned[], sampleMs: number): Promise<ProcessRow[]> {
  const samples = await sampleProcs(planned.flatMap((p) => (p.pid === null ? [] : [p.pid])), sampleMs)
  const now = Date.now()
  return planned.map((p) => {
    const s = p.pid === null ? undefined : samples.get(p.pid)
    return {
      name: p.name,
      role: p.role,
      pid: p.pid,
      state: p.state,
      uptimeMs: s?.startedAt == null ? null : Math.max(0, Math.round(now - s.startedAt)),
      cpuPercent: s?.cpuPercent ?? null,
      cpuMs: s === undefined ? null : Math.round(s.cpuMs),
      rssBytes: s?.rssBytes ?? null,
      restarts: p.restarts,
      lastExit: p.lastExit,
    }
  })
}

export interface Collected {
  status: StackStatus
  arbiter: ArbiterStatus | null
  /** What could not be read (supervisord's XML-RPC, the arbiter's control socket). */
  problems: string[]
}

/** Every process of the native stack (supervisord running with these directories). */
export async function collectStack(paths: { runDir: string; logDir: string }, supervisord: number, sampleMs = 250): Promise<Collected> {
  const problems: string[] = []
  let programs: ProgramInfo[] = []
  try {
    programs = await programInfo(join(paths.runDir, 'supervisor.sock'))
  } catch (err) {
    problems.push(`supervisord: ${(err as Error).message}`)
  }
  let arbiter: ArbiterStatus | null = null
  try {
    arbiter = (await controlRequest(join(paths.runDir, 'arbiter.sock'), 'status', 5000)) as ArbiterStatus
  } catch (err) {
    problems.push(`server: ${(err as Error).message}`)
  }
  const history = parseSupervisorLog(readSupervisorLog(paths.logDir))
  const rows: Planned[] = [{ name: 'supervisord', role: 'supervisord', pid: supervisord, state: 'running', restarts: null, lastExit: null }]
  const program = (name: string): Planned => {
    const info = programs.find((p) => p.name === name)
    return { name, role: name === 'server' ? 'arbiter' : name === 'nginx' ? 'nginx-wrapper' : name, pid: info !== undefined && info.pid > 0 ? info.pid : null, state: info?.state.toLowerCase() ?? 'unknown', restarts: history[name]?.restarts ?? 0, lastExit: history[name]?.lastExit ?? null }
  }
  rows.push(program('nginx'))
  const master = readPid(join(paths.runDir, 'nginx.pid'))
  if (master !== null && isAlive(master)) {
    rows.push({ name: 'nginx/master', role: 'nginx-master', pid: master, state: 'running', restarts: null, lastExit: null })
    for (const pid of childrenOf(master)) rows.push({ name: 'nginx/worker', role: 'nginx-worker', pid, state: 'running', restarts: null, lastExit: null })
  }
  rows.push(program('server'))
  if (arbiter !== null) rows.push(...arbiterRows(arbiter))
  rows.push(program('push'), program('bridge'))
  for (const p of programs) if (!['nginx', 'server', 'push', 'bridge'].includes(p.name)) rows.push(program(p.name))
  return { status: { processes: await measure(rows, sampleMs) }, arbiter, problems }
}

/** 45s, 12m, 3h, 2d: how long ago or how long for. */
export function shortDuration(ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 60) return `${s}s`
  if (s < 3600) return `${Math.floor(s / 60)}m`
  if (s < 86_400) return `${Math.floor(s / 3600)}h`
  return `${Math.floor(s / 86_400)}d`
}

/** CPU time: 0.03s, 12.3s, 3m04s, 2h05m. */
export function cpuTime(ms: number): string {
  const s = Math.floor(ms / 1000)
  if (s < 10) return `${(ms / 1000).toFixed(2)}s`
  if (s < 60) return `${(ms / 1000).toFixed(1)}s`
  if (s < 3600) return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
  return `${Math.floor(s / 3600)}h${String(Math.floor(s / 60) % 60).padStart(2, '0')}m`
}

/** The table, one line a process; `now` for the LAST EXIT ages. */
export function formatTable(status: StackStatus, now = Date.now()): string {
  const dash = (v: string | null): string => v ?? '-'
  const rows = [['NAME', 'PID', 'STATE', 'UPTIME', 'CPU', 'CPU TIME', 'MEM', '↺', 'LAST EXIT']]
  for (const p of status.processes) {
    rows.push([
      p.name,
      dash(p.pid === null ? null : String(p.pid)),
      p.state,
      dash(p.uptimeMs === null ? null : shortDuration(p.uptimeMs)),
      dash(p.cpuPercent === null ? null : `${p.cpuPercent.toFixed(1)}%`),
      dash(p.cpuMs === null ? null : cpuTime(p.cpuMs)),
      dash(p.rssBytes === null ? null : `${(p.rssBytes / 1048576).toFixed(1)}M`),
      dash(p.restarts === null ? null : String(p.restarts)),
      dash(p.lastExit === null ? null : `${p.lastExit.reason}, ${shortDuration(Math.max(0, now - Date.parse(p.lastExit.at)))} ago`),
    ])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...r[i]!].length)))
  return rows.map((r) => r.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join('  ').trimEnd() + '\n').join('')
}

/** `forkyard ps` as text: the table, then (top) the totals, the arbiter's line and what could not be read. */
export function formatCollected(c: Collected, totalsLine = ''): string {
  return formatTable(c.status) + totalsLine + (c.arbiter === null ? '' : arbiterSummary(c.arbiter)) + c.problems.map((p) => `${p}\n`).join('')
}

/** The arbiter's line under the table: generation, readiness, bind, worker restarts by cause. */
export function arbiterSummary(s: ArbiterStatus): string {
  const restarts = s.restarts === undefined ? '' : `; worker restarts: ${Object.entries(s.restarts).map(([k, v]) => `${k} ${v}`).join(', ')}`
  return `server: pid ${s.pid}, generation ${s.generation}, ${s.readyWorkers}/${s.expectedWorkers} workers ready${s.reloading ? ', reloading' : ''}, bind ${s.bind.join(' ')}, config ${s.configVersion}${restarts}\n`
}

/**
 * `forkyard status`: the arbiter's own view, one row a worker with what only it knows (generation,
 * requests, heartbeat), its slot's restarts and last exit, then the jobs process.
 */
export function formatWorkers(s: ArbiterStatus, now = Date.now()): string {
  const ago = (e: LastExit | null | undefined): string => (e === null || e === undefined ? '-' : `${describeExit(e)}, ${shortDuration(Math.max(0, now - e.at))} ago`)
  const rows = [['WORKER', 'PID', 'GEN', 'STATE', 'SERVED', 'INFLIGHT', 'RSS', 'HEARTBEAT', 'UPTIME', 'SLOT', '↺', 'LAST EXIT']]
  for (const w of s.workers) {
    rows.push([String(w.worker), String(w.pid), String(w.generation), w.state, String(w.served), String(w.inflight), `${(w.rssBytes / 1048576).toFixed(1)}M`, `${(w.lastHeartbeatMsAgo / 1000).toFixed(1)}s ago`, `${Math.round(w.uptimeMs / 1000)}s`, String(w.slot ?? '-'), String(w.restarts ?? '-'), ago(w.lastExit)])
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => [...r[i]!].length)))
  const jobs = s.jobs === undefined || s.jobs === null ? `jobs pid ${s.jobsPid ?? 'none'}` : `jobs pid ${s.jobs.pid ?? 'none (restarting)'}, ${s.jobs.restarts} restarts, last exit ${ago(s.jobs.lastExit)}`
  const head = `arbiter pid ${s.pid}, generation ${s.generation}, ${s.readyWorkers}/${s.expectedWorkers} workers ready${s.reloading ? ', reloading' : ''}, bind ${s.bind.join(' ')}, config ${s.configVersion}, ${jobs}\n`
  const causes = s.restarts === undefined ? '' : `worker restarts: ${Object.entries(s.restarts).map(([k, v]) => `${k} ${v}`).join(', ')}\n`
  return head + causes + rows.map((r) => r.map((c, i) => c + ' '.repeat(widths[i]! - [...c].length)).join('  ').trimEnd() + '\n').join('')
}
