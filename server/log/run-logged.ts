/**
 * Runs a program that cannot write forkyard's log files itself (nginx) as a child: its stdout and
 * stderr are read line by line and written, whole, into this process's output (the program's
 * <svc>.log, one writer); plain-text lines are wrapped into the schema with a level read from
 * nginx's "[error]" style. Signals are passed on by the caller's process shell through `onChild`;
 * when the child dies, what is left of its process group (nginx workers orphaned by a kill -9 of
 * their master) is killed, so a restart can bind.
 */
import { spawn } from 'node:child_process'
import type { Logger } from 'pino'
import type { LineOutput } from './rotating-file.js'
import { relayLines } from './relay.js'
import { plainLine, type Level } from './schema.js'

const nginxLevels: Record<string, Level> = { emerg: 'fatal', alert: 'fatal', crit: 'fatal', error: 'error', warn: 'warn', notice: 'info', info: 'info', debug: 'debug' }

export function wrapPlainLine(svc: string, pid: number, line: string): string {
  const level = /\[(emerg|alert|crit|error|warn|notice|info|debug)\]/.exec(line)?.[1]
  return JSON.stringify(plainLine(svc, pid, level === undefined ? 'info' : nginxLevels[level]!, redactTokens(line)))
}

/**
 * nginx's error lines quote the request line, query string included: a token a client put in the
 * URL (the push process does not accept one there) must not reach the log.
 */
export function redactTokens(line: string): string {
  return line.replace(/([?&](?:token|access_token)=)[^&\s"]+/gi, '$1(redacted)')
}

/** The signals a wrapper passes on to the program it runs (nginx's controls: nginx(8), "-s signal"). */
export const forwardedSignals = ['SIGTERM', 'SIGINT', 'SIGQUIT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2', 'SIGWINCH'] as const

export type ForwardedSignal = (typeof forwardedSignals)[number]

/** Passes a signal on to the running child; given to `onChild` when it starts, null once it has exited. */
export type Forward = (sig: ForwardedSignal) => void

export function runLogged(
  svc: string,
  command: string,
  args: string[],
  output: LineOutput,
  log: Logger,
  env: NodeJS.ProcessEnv = process.env,
  onChild: (forward: Forward | null) => void = () => {},
): Promise<number> {
  // Its own process group, so that the whole group can be cleaned up after the leader dies.
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, env })
  const pid = child.pid ?? 0
  relayLines(child.stdout!, output, { wrap: (line) => wrapPlainLine(svc, pid, line) })
  relayLines(child.stderr!, output, { wrap: (line) => wrapPlainLine(svc, pid, line) })
  onChild((sig) => {
    log.info({ signal: sig, childPid: pid }, `passing ${sig} on to ${command}`)
    child.kill(sig)
  })
  return new Promise((resolve) => {
    child.on('error', (err) => {
      log.fatal({ err }, `cannot start ${command}`)
      onChild(null)
      resolve(127)
    })
    child.on('exit', (code, signal) => {
      onChild(null)
      try {
        process.kill(-pid, 'SIGKILL')
        log.warn({ childPid: pid }, `killed what was left of ${command}'s process group`)
      } catch {
        // the group is already empty: the normal case
      }
      const level = code === 0 ? 'info' : 'error'
      log[level]({ childPid: pid, code, signal }, `${command} exited`)
      // Let the pipes deliver their last lines ('close'), but never wait long for them.
      const done = (): void => resolve(code ?? 128 + (signal === 'SIGKILL' ? 9 : signal === 'SIGTERM' ? 15 : 1))
      const timer = setTimeout(done, 1000)
      child.once('close', () => {
        clearTimeout(timer)
        done()
      })
    })
  })
}
