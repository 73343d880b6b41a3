/**
 * A new worker boots at a lower CPU priority (nice + BOOT_NICE) and gets the arbiter's priority
 * back once it is ready. Booting Node and the app costs a few hundred ms of CPU; at equal priority
 * it takes that from the workers serving requests, and during a rolling reload on a busy 2-core
 * machine the slowest request went from under 20 ms to over 100 ms. At a lower priority the boot
 * only uses what the serving processes leave.
 *
 * Getting the priority back needs CAP_SYS_NICE (root natively) or an RLIMIT_NICE that allows it
 * (not the container, which runs with no capability); where neither holds, workers boot at normal priority, so
 * that no worker is ever left behind at a lower one.
 */
import { readFileSync, readdirSync } from 'node:fs'
import { getPriority, setPriority } from 'node:os'

export const BOOT_NICE = 10
const CAP_SYS_NICE = 23

/** Whether this process may give a child back its own priority after lowering it (see above). */
export function canRestorePriority(): boolean {
  try {
    const status = readFileSync('/proc/self/status', 'utf8')
    const eff = /^CapEff:\s+([0-9a-f]+)$/m.exec(status)?.[1]
    if (eff !== undefined && (BigInt(`0x${eff}`) >> BigInt(CAP_SYS_NICE)) & 1n) return true
    // RLIMIT_NICE allows a nice value down to 20 - limit (setrlimit(2)).
    const soft = /^Max nice priority\s+(\d+|unlimited)/m.exec(readFileSync('/proc/self/limits', 'utf8'))?.[1]
    if (soft === undefined) return false
    return soft === 'unlimited' || 20 - Number(soft) <= getPriority()
  } catch {
    return false
  }
}

let restorable: boolean | null = null

/**
 * Lowers a child that is booting by BOOT_NICE, only where its priority can be given back
 * (checked once per process); true when it was lowered, and restoreAfterBoot() is then owed.
 */
export function lowerForBoot(pid: number): boolean {
  restorable ??= canRestorePriority()
  return restorable && setProcessNice(pid, getPriority() + BOOT_NICE)
}

/** Gives a child lowered by lowerForBoot() this process's priority back; false when it could not. */
export function restoreAfterBoot(pid: number): boolean {
  return setProcessNice(pid, getPriority())
}

/** Sets the nice value of every thread of `pid`; false when it is gone or not permitted. */
export function setProcessNice(pid: number, nice: number): boolean {
  let tids: number[]
  try {
    tids = readdirSync(`/proc/${pid}/task`).map(Number)
  } catch {
    tids = [pid]
  }
  let ok = true
  for (const tid of tids) {
    try {
      setPriority(tid, Math.max(-20, Math.min(19, nice)))
    } catch {
      ok = false
    }
  }
  return ok
}

/**
 * This process gives way to the serving ones: `forkyard status|reload|stop|ps|logs` are not
 * latency-critical, and their CPU would otherwise come out of the workers' share.
 */
export function yieldCpu(): void {
  try {
    setPriority(Math.min(19, getPriority() + BOOT_NICE))
  } catch {
    // not permitted: stay as we are
  }
}
