/**
 * Dying with the parent. Linux has prctl(PR_SET_PDEATHSIG), which Node does not expose; instead a
 * process polls its parent pid: when the parent dies the kernel reparents the process (to init or
 * a subreaper) and getppid() changes. Every program of the stack runs under supervisord with
 * --supervised: killed -9, supervisord leaves no program behind, each stops gracefully within a
 * poll interval of the kill. Cluster workers and the jobs process follow their arbiter through the
 * IPC channel's 'disconnect' instead, which is immediate.
 */
import { isAlive, readPid } from './pidfile.js'

export function onParentGone(fn: (ppid: number) => void, everyMs = 250): () => void {
  const parent = process.ppid
  const timer = setInterval(() => {
    if (process.ppid === parent) return
    clearInterval(timer)
    fn(parent)
  }, everyMs)
  // Never the only thing keeping a process alive.
  timer.unref()
  return () => clearInterval(timer)
}

/**
 * Waits (at most `maxMs`) until the process named in `pidfile` has exited, or there is none. When
 * supervisord dies every program stops on its own, all at once; this puts them back in the order
 * supervisord would have used: nginx first, then the server (which keeps serving what nginx still
 * sends it), then the bridge (which acknowledges the server's last publishes).
 */
export async function afterExitOf(pidfile: string, maxMs: number): Promise<void> {
  const until = Date.now() + maxMs
  for (let i = 0; i < 100_000 && Date.now() < until; i++) {
    const pid = readPid(pidfile)
    if (pid === null || pid === process.pid || !isAlive(pid)) return
    await new Promise((r) => setTimeout(r, 100))
  }
}
