/**
 * The processes of one stack, found in /proc whatever their parent: a process belongs to the stack
 * when its environment holds the stack's FORKYARD_RUN_DIR or FORKYARD_PROJECT_DIR, when its command
 * line or working directory is under the project directory (nginx rewrites its environment area
 * for its process title, but its master names the run directory on its command line and every
 * nginx process keeps the project directory as its working directory), or when it descends from
 * such a process. Linux only.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

export interface ProcEntry {
  pid: number
  ppid: number
  /** The state letter of /proc/<pid>/stat: R, S, D, Z (zombie), T... */
  state: string
  /** The command line, or [comm] when it is empty (a zombie). */
  cmd: string
  cwd: string | null
  environ: string[]
}

export type ProcTable = Map<number, ProcEntry>

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return fallback
  }
}

/** Every process now (a process that exits while it is read is left out). */
export function processTable(): ProcTable {
  const table: ProcTable = new Map()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    const stat = readOr(`/proc/${pid}/stat`, '')
    // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
    const close = stat.lastIndexOf(')')
    if (close < 0) continue
    const comm = stat.slice(stat.indexOf('(') + 1, close)
    const [state = '?', ppid = '0'] = stat.slice(close + 2).split(' ')
    const cmdline = readOr(`/proc/${pid}/cmdline`, '').split('\0').filter((s) => s !== '').join(' ')
    let cwd: string | null = null
    try {
      cwd = readlinkSync(`/proc/${pid}/cwd`)
    } catch {
      // gone, a zombie, or not ours to read
    }
    table.set(pid, { pid, ppid: Number(ppid), state, cmd: cmdline === '' ? `[${comm}]` : cmdline, cwd, environ: readOr(`/proc/${pid}/environ`, '').split('\0') })
  }
  return table
}

/** pid's ancestors, nearest first, up to pid 1 or 0 (bounded: a table read while processes exit may hold a loop). */
export function ancestors(table: ProcTable, pid: number): number[] {
  const out: number[] = []
  let p = table.get(pid)?.ppid ?? 0
  for (let i = 0; p > 0 && i < 64; i++) {
    out.push(p)
    p = table.get(p)?.ppid ?? 0
  }
  return out
}

export interface StackMarks {
  runDir: string
  projectDir: string
}

function under(path: string, dir: string): boolean {
  return path === dir || path.startsWith(`${dir}/`)
}

/**
 * The stack's processes, sorted by pid. `exclude`: this test process; anything that descends from
 * it is left out too (the `forkyard` commands the test runs are not the stack).
 */
export function stackProcesses(marks: StackMarks, table: ProcTable = processTable(), exclude: number = process.pid): ProcEntry[] {
  const mine = new Set<number>()
  for (const p of table.values()) {
    const env = p.environ.includes(`FORKYARD_RUN_DIR=${marks.runDir}`) || p.environ.includes(`FORKYARD_PROJECT_DIR=${marks.projectDir}`)
    const named = p.cmd.split(' ').some((arg) => under(arg, marks.projectDir) || arg.includes(`${marks.projectDir}/`))
    const cwd = p.cwd !== null && under(p.cwd, marks.projectDir)
    if (env || named || cwd) mine.add(p.pid)
  }
  // Descendants of what was found (bounded: a pid tree is never deeper than the table is long).
  for (let changed = true, i = 0; changed && i < 64; i++) {
    changed = false
    for (const p of table.values()) {
      if (!mine.has(p.pid) && mine.has(p.ppid)) {
        mine.add(p.pid)
        changed = true
      }
    }
  }
  return [...mine]
    .filter((pid) => pid !== exclude && !ancestors(table, pid).includes(exclude))
    .sort((a, b) => a - b)
    .map((pid) => table.get(pid)!)
}

/** The stack's processes that are neither `root` (supervisord) nor descend from it. */
export function outsiders(procs: ProcEntry[], table: ProcTable, root: number | null): ProcEntry[] {
  return procs.filter((p) => root === null || (p.pid !== root && !ancestors(table, p.pid).includes(root)))
}

/** One line per process: pid, state, command, and its chain of parents with their commands. */
export function describeProcesses(procs: ProcEntry[], table: ProcTable): string {
  const short = (s: string): string => (s.length > 90 ? `${s.slice(0, 87)}...` : s)
  return procs
    .map((p) => {
      const chain = ancestors(table, p.pid)
        .slice(0, 4)
        .map((a) => `${a} ${short(table.get(a)?.cmd ?? '?')}`)
      return `pid ${p.pid} [${p.state}] ${short(p.cmd)}\n      parents: ${chain.length === 0 ? '(none)' : chain.join(' <- ')}`
    })
    .join('\n')
}

/**
 * How many connections `pid` holds that it accepted on a Unix socket it listens on (an accepted
 * socket carries its listener's path in /proc/net/unix), whatever that path is. For a worker
 * behind nginx: its upstream connections, each carrying at most one request at a time.
 */
export function acceptedConnections(pid: number): number {
  let fds: string[] = []
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return 0
  }
  const mine: string[] = []
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`))
      if (m !== null) mine.push(m[1]!)
    } catch {
      // closed meanwhile
    }
  }
  // Num RefCount Protocol Flags Type St Inode Path: Flags 00010000 = listening, St 03 = connected.
  const sockets = new Map<string, { listening: boolean; connected: boolean; path: string }>()
  for (const line of readOr('/proc/net/unix', '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f.length >= 7) sockets.set(f[6]!, { listening: (parseInt(f[3]!, 16) & 0x10000) !== 0, connected: f[5] === '03', path: f[7] ?? '' })
  }
  const listening = new Set(mine.map((i) => sockets.get(i)).filter((x) => x?.listening === true && x.path !== '').map((x) => x!.path))
  // Without a listener of its own (connections handed over by another process), any connection
  // with a path is an accepted one: a socket that connected out has none.
  return mine.filter((i) => {
    const x = sockets.get(i)
    return x !== undefined && x.connected && (listening.size === 0 ? x.path !== '' : listening.has(x.path))
  }).length
}
