/**
 * Processes of one stack, found whoever their parent is now: every program supervisord starts (and
 * every worker, jobs process and nginx master under them) inherits FORKYARD_RUN_DIR=<run dir> in
 * its environment, and nginx names its configuration (<run dir>/nginx.conf) on its command line;
 * nginx workers share their master's process group. `forkyard up` stops what a killed stack left
 * behind before it starts, and `forkyard down` never reports success while one of them lives.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { isAlive, procStat } from './pidfile.js'

export interface StackProcess {
  pid: number
  ppid: number
  pgrp: number
  cmd: string
}

/** This process and its ancestors: `forkyard up` itself may carry the run directory in its environment. */
function lineage(): Set<number> {
  const out = new Set<number>()
  for (let pid = process.pid, i = 0; pid > 1 && i < 64; i++) {
    out.add(pid)
    pid = procStat(pid)?.ppid ?? 0
  }
  return out
}

export function stackProcesses(runDir: string): StackProcess[] {
  const marker = `FORKYARD_RUN_DIR=${runDir}\0`
  const conf = `${runDir}/nginx.conf`
  const own = lineage()
  const found = new Map<number, StackProcess>()
  const all: { pid: number; ppid: number; pgrp: number; cmd: string }[] = []
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const pid = Number(name)
    if (own.has(pid)) continue
    const st = procStat(pid)
    if (st === null) continue
    let cmd = ''
    let environ = ''
    try {
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
      environ = readFileSync(`/proc/${pid}/environ`, 'utf8')
    } catch {
      // gone, or not ours to read
    }
    const p = { pid, ...st, cmd: cmd.replaceAll('\0', ' ').trim() }
    all.push(p)
    if (`${environ}\0`.includes(marker) || cmd.includes(conf)) found.set(pid, p)
  }
  // nginx workers: their titles name nothing, their process group is their master's.
  const leaders = new Set([...found.values()].map((p) => p.pid))
  for (const p of all) if (leaders.has(p.pgrp) && !found.has(p.pid)) found.set(p.pid, p)
  return [...found.values()].sort((a, b) => a.pid - b.pid)
}

/**
 * Stops the given processes: SIGTERM (QUIT for nginx: its graceful stop), then SIGKILL after
 * `graceMs`. Resolves with those still alive after that (none, unless they cannot be signalled).
 */
export async function stopProcesses(procs: StackProcess[], graceMs: number): Promise<StackProcess[]> {
  for (const p of procs) {
    try {
      process.kill(p.pid, p.cmd.startsWith('nginx: master') ? 'SIGQUIT' : 'SIGTERM')
    } catch {
      // already gone
    }
  }
  const alive = (): StackProcess[] => procs.filter((p) => isAlive(p.pid))
  const deadline = Date.now() + graceMs
  for (let i = 0; i < 100_000 && alive().length > 0 && Date.now() < deadline; i++) await new Promise((r) => setTimeout(r, 100))
  for (const p of alive()) {
    try {
      process.kill(p.pid, 'SIGKILL')
    } catch {
      // gone meanwhile
    }
  }
  for (let i = 0; i < 50 && alive().length > 0; i++) await new Promise((r) => setTimeout(r, 100))
  return alive()
}

export function describe(procs: StackProcess[]): string {
  return procs.map((p) => `${p.pid} (parent ${p.ppid}) ${p.cmd.slice(0, 120)}`).join('; ')
}
