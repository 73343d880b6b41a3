/**
 * Dying with the parent. Linux has prctl(PR_SET_PDEATHSIG), which Node does not expose; instead a
 * process polls its parent pid: when the parent dies the kernel reparents the process (to init or
 * a subreaper) and getppid() changes. Every program of the stack runs under supervisord with
 * --supervised: killed -9, supervisord leaves no program behind, each stops gracefully within a
 * poll interval of the kill. Cluster workers and the jobs process follow their arbiter through the
 * IPC channel's 'disconnect' instead, which is immediate.
 */
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
