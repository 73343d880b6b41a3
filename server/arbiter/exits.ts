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
