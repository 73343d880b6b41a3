/**
 * What the outside can ask of the arbiter, and what each request does: the signals (the process
 * shell queues them and runs these handlers from one loop) and the commands of the control socket
 * (control.ts: `forkyard status`, `reload`, `stop`, scaling up and down).
 */
import type { EnvWatcher } from '../config/watch.js'
import type { SignalHandlers } from '../process/shell.js'
import type { ArbiterStatus, ControlCommand } from './control.js'

/** The arbiter's operations that signals and control commands map to. */
export interface Commandable {
  status(): ArbiterStatus
  reload(): Promise<boolean>
  increment(): number
  decrement(): number
  close(): Promise<number>
}

/** `stopped` gets the exit code once a stop is complete. */
export function arbiterSignals(arbiter: Commandable, watcher: EnvWatcher | null, stopped: (code: number) => void): SignalHandlers {
  return {
    // SIGHUP: re-read .env, then a rolling reload, loading the app's code afresh.
    SIGHUP: () => {
      watcher?.check('SIGHUP')
      void arbiter.reload()
    },
    // SIGTERM: graceful stop (drain every worker, stop the jobs process), then exit.
    SIGTERM: () => void arbiter.close().then(stopped),
    // SIGINT (Ctrl-C): the same graceful stop.
    SIGINT: () => void arbiter.close().then(stopped),
    // SIGTTIN: one more worker.
    SIGTTIN: () => void arbiter.increment(),
    // SIGTTOU: one worker fewer (never below one).
    SIGTTOU: () => void arbiter.decrement(),
  }
}

/** One control-socket command; its answer is the JSON line sent back. */
export async function controlCommand(arbiter: Commandable, cmd: ControlCommand): Promise<unknown> {
  switch (cmd) {
    case 'status':
      return arbiter.status()
    case 'reload':
      return { reloaded: await arbiter.reload() }
    case 'ttin':
      return { expectedWorkers: arbiter.increment() }
    case 'ttou':
      return { expectedWorkers: arbiter.decrement() }
    case 'stop':
      // Stopped the way SIGTERM stops it, through the signal loop.
      setImmediate(() => process.kill(process.pid, 'SIGTERM'))
      return { stopping: true }
  }
}
