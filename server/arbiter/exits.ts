/**
 * How a worker's exit is logged: a stop we asked for is info, SIGTERM from elsewhere is info,
 * other signals warn, SIGKILL is an error ("possibly OOM"), a non-zero code is an error.
 */
export type ExitLevel = 'info' | 'warn' | 'error'

export function classifyExit(code: number | null, signal: string | null, expected: boolean): { level: ExitLevel; msg: string } {
  if (signal === 'SIGKILL') {
    return expected ? { level: 'warn', msg: 'worker killed (SIGKILL) by the arbiter' } : { level: 'error', msg: 'worker killed by SIGKILL, possibly by the OOM killer' }
  }
  if (signal === 'SIGTERM') return { level: 'info', msg: 'worker stopped by SIGTERM' }
  if (signal !== null) return { level: 'warn', msg: `worker killed by ${signal}` }
  if (code === 0) return { level: expected ? 'info' : 'warn', msg: expected ? 'worker exited' : 'worker exited unexpectedly with code 0' }
  return { level: 'error', msg: `worker exited with code ${code}` }
}

/** Delay before respawning after `streak` consecutive early crashes: 0, 0.25 s, 0.5 s, ... 30 s. */
export function backoffMs(streak: number): number {
  if (streak <= 1) return 0
  return Math.min(30_000, 250 * 2 ** (streak - 2))
}

/**
 * Why a worker or the jobs process was replaced: the names of the restart counters (in
 * ArbiterStatus, and later as metric labels). One place, so that every reader agrees.
 *   crash         it exited or was killed without the arbiter asking
 *   timeout       the arbiter killed it: no heartbeat, or not ready within FORKYARD_BOOT_TIMEOUT
 *   memory        recycled: its RSS went over FORKYARD_MAX_RSS
 *   max-requests  recycled: it served FORKYARD_MAX_REQUESTS
 *   reload        replaced by a rolling reload (forkyard reload, SIGHUP, a .env change)
 */
export const RESTART_CAUSES = ['crash', 'timeout', 'memory', 'max-requests', 'reload'] as const
export type RestartCause = (typeof RESTART_CAUSES)[number]

/** How a process went the last time it was replaced (`at`: epoch ms). */
export interface LastExit {
  cause: RestartCause
  code: number | null
  signal: string | null
  at: number
}

/** A count per cause, every cause present (0 when none). */
export function zeroCounts(): Record<RestartCause, number> {
  return Object.fromEntries(RESTART_CAUSES.map((c) => [c, 0])) as Record<RestartCause, number>
}

/** "crash: SIGKILL", "reload: code 0": a last exit in one phrase. */
export function describeExit(e: Pick<LastExit, 'cause' | 'code' | 'signal'>): string {
  return `${e.cause}: ${e.signal ?? `code ${String(e.code)}`}`
}
