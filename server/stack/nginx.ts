/**
 * `forkyard nginx`: renders nginx/nginx.conf.template with values from the settings into
 * <run dir>/nginx.conf, checks it with `nginx -t`, then runs nginx in the foreground with its
 * error lines relayed, whole, into <log dir>/nginx.log. nginx writes <log dir>/access.log itself;
 * the wrapper rotates it (access-log.ts).
 */
import { spawnSync } from 'node:child_process'
import { constants, existsSync, mkdirSync, openSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { Socket } from 'node:net'
import { join } from 'node:path'
import type { Logger } from 'pino'
import { loadConfig } from '../config/load.js'
import { loadPushConfig } from '../config/messaging.js'
import { loadStackConfig, nginxListen } from '../config/stack.js'
import { loadLogConfig } from '../config/logging.js'
import { ForkyardError, codes } from '../errors.js'
import { relayLines } from '../log/relay.js'
import { runLogged, wrapPlainLine, type Forward, type ForwardedSignal } from '../log/run-logged.js'
import { isAlive, readPid } from '../process/pidfile.js'
import type { ProcessShell } from '../process/shell.js'
import { writeState } from '../process/state.js'
import type { EnvWatcher } from '../config/watch.js'
import { ACCESS_LOG_FILE, AccessLogRotation } from './access-log.js'
import { HEALTH_SOCKET } from '../arbiter/health-http.js'

/** Replaces every ${NAME}; a placeholder without a value is an error, never left in the file. */
export function renderTemplate(template: string, values: Record<string, string>): string {
  return template.replace(/\$\{([A-Z_]+)\}/g, (whole, name: string) => {
    const v = values[name]
    if (v === undefined) throw new ForkyardError(codes.CONFIG, `nginx template placeholder ${whole} has no value`)
    return v
  })
}

function seconds(ms: number): string {
  return `${Math.max(1, Math.ceil(ms / 1000))}s`
}

export function nginxValues(env: NodeJS.ProcessEnv, home: string): Record<string, string> {
  const server = loadConfig(env)
  const stack = loadStackConfig(env)
  const push = loadPushConfig(env)
  const sock = server.bind.find((b) => b.kind === 'unix')
  if (sock === undefined || sock.kind !== 'unix') {
    throw new ForkyardError(codes.CONFIG, `Expected FORKYARD_BIND to include a Unix socket (unix:/path) for nginx, got ${JSON.stringify(server.bind.map((b) => b.text).join(','))}`)
  }
  // nginx must close idle upstream connections before the server does (see the template): 5 s
  // earlier, or half the server's timeout when that is short.
  const upstreamKeepaliveMs = Math.max(1, Math.min(60_000, server.keepAliveTimeoutMs - Math.min(5000, Math.ceil(server.keepAliveTimeoutMs / 2))))
  const worstServerMs = Math.max(server.timeoutMs, server.requestTimeoutMs)
  return {
    RUN_DIR: server.runDir,
    NGINX_WORKERS: stack.nginxWorkers,
    NGINX_ERROR_LEVEL: 'warn',
    SHUTDOWN_TIMEOUT: seconds(server.gracefulTimeoutMs + 5000),
    USER_DIRECTIVE: process.getuid?.() === 0 ? '# Started as root (a native run as root): workers stay root to reach the run directory.\nuser root;' : '',
    MIME_TYPES: '/etc/nginx/mime.types',
    SERVER_SOCKET: sock.path,
    HEALTH_SOCKET: join(server.runDir, HEALTH_SOCKET),
    SERVER_KEEPALIVE: seconds(server.keepAliveTimeoutMs),
    UPSTREAM_KEEPALIVE: `${upstreamKeepaliveMs}ms`,
    PUSH_BIND: push.bind,
    LISTEN: nginxListen(env),
    BODY_LIMIT: String(stack.bodyLimitBytes),
    PROXY_READ_TIMEOUT: seconds(worstServerMs + 5000),
    STATIC_DIR: stack.staticDir,
    CLIENT_DIR: join(home, 'client'),
    // FORKYARD_TRUSTED_ADDRESSES as the geo block's entries (validated addresses and CIDR blocks).
    TRUSTED_GEO: server.trustedAddresses.map((r) => `        ${r.address}/${r.prefix} 1;`).join('\n') || '        # FORKYARD_TRUSTED_ADDRESSES=none: no peer is trusted',
    // FORKYARD_METRICS_ALLOW as allow lines before `deny all` (none: nobody may scrape through nginx).
    METRICS_ALLOW: stack.metricsAllow.map((r) => `            allow ${r.address}/${r.prefix};`).join('\n') || '            # FORKYARD_METRICS_ALLOW=none: nobody',
    ...accessLogTarget(server.runDir, loadLogConfig(env).dir),
  }
}

/**
 * With a log directory, nginx writes access.log there itself, one write per whole line; the
 * wrapper only rotates it (access-log.ts). Not buffered: an nginx killed -9 lost its buffer's lines
 * (seen in the container test). Without a log directory (JSON lines on stdout), a FIFO that the
 * wrapper relays to its output.
 */
function accessLogTarget(runDir: string, logDir: string): { ACCESS_LOG: string } {
  return { ACCESS_LOG: logDir === '' ? join(runDir, 'nginx-access.fifo') : join(logDir, ACCESS_LOG_FILE) }
}

/**
 * An nginx master still running our configuration: left behind when its wrapper was killed -9
 * (it keeps the port, and a new nginx could not bind). Asked to stop gracefully (QUIT: it closes
 * its listening sockets at once and finishes its requests), killed with its workers after a while.
 */
async function stopLeftover(conf: string, pidfile: string, log: Logger, graceMs: number): Promise<void> {
  const pid = readPid(pidfile)
  if (pid === null || pid === process.pid || !isAlive(pid)) return
  let cmdline = ''
  try {
    cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
  } catch {
    return
  }
  if (!cmdline.includes(conf)) return
  log.warn({ leftoverPid: pid }, 'an nginx master left by an earlier wrapper still runs: stopping it gracefully')
  try {
    process.kill(pid, 'SIGQUIT')
  } catch {
    return
  }
  const deadline = Date.now() + graceMs
  for (let i = 0; i < 10_000 && isAlive(pid) && Date.now() < deadline; i++) await new Promise((r) => setTimeout(r, 50))
  if (isAlive(pid)) {
    log.warn({ leftoverPid: pid }, 'the leftover nginx did not stop in time: killing its process group')
    try {
      process.kill(-pid, 'SIGKILL')
    } catch {
      process.kill(pid, 'SIGKILL')
    }
  }
}

/** Renders the configuration for `env` into `path` and checks it with `nginx -t`; null when accepted, else why not. */
function renderChecked(env: NodeJS.ProcessEnv, home: string, path: string): { values: Record<string, string>; error: string | null } {
  const values = nginxValues(env, home)
  writeFileSync(path, renderTemplate(readFileSync(join(home, 'nginx/nginx.conf.template'), 'utf8'), values), { mode: 0o600 })
  // -e: the error log before the configuration is read (default /var/log/nginx, not writable).
  const check = spawnSync('nginx', ['-t', '-q', '-e', 'stderr', '-c', path], { encoding: 'utf8', env: { ...env, TZ: 'UTC' } })
  return { values, error: check.status === 0 ? null : `${check.stderr ?? ''}${check.stdout ?? ''}${check.error?.message ?? ''}`.trim() }
}

export interface NginxOptions {
  /** Stop nginx gracefully when the parent process (supervisord) dies. */
  dieWithParent?: boolean
  /** .env changes (validated): the configuration is rendered again, checked, and nginx reloaded (HUP). */
  watcher?: EnvWatcher | null
}

/** Runs nginx in the wrapper process `shell` until a stop is asked; resolves with the exit code. */
export async function runNginx(env: NodeJS.ProcessEnv, home: string, shell: ProcessShell, options: NginxOptions = {}): Promise<number> {
  const { output, log } = shell
  // A stop asked of this wrapper ends nginx for good; nginx dying by itself (its master killed) is
  // restarted here at once, which is quicker than exiting and waiting for supervisord to start a
  // new wrapper. Signals reach nginx through runLogged while it runs.
  let stopAsked = false
  let nginx: Forward | null = null
  const pass = (sig: ForwardedSignal, stops: boolean) => (): void => {
    if (stops) stopAsked = true
    nginx?.(sig)
  }
  shell.handleSignals({
    // SIGTERM (supervisord's stop): nginx's fast shutdown, then the wrapper exits.
    SIGTERM: pass('SIGTERM', true),
    // SIGINT (Ctrl-C): nginx's fast shutdown too, then the wrapper exits.
    SIGINT: pass('SIGINT', true),
    // SIGQUIT: nginx's graceful shutdown (it finishes its requests), then the wrapper exits.
    SIGQUIT: pass('SIGQUIT', true),
    // SIGHUP: nginx re-reads its configuration (new workers start, the old ones finish).
    SIGHUP: pass('SIGHUP', false),
    // SIGUSR1: nginx reopens its log files.
    SIGUSR1: pass('SIGUSR1', false),
    // SIGUSR2: nginx starts a new executable (upgrade on the fly).
    SIGUSR2: pass('SIGUSR2', false),
    // SIGWINCH: nginx stops its worker processes gracefully; the master stays.
    SIGWINCH: pass('SIGWINCH', false),
  })
  // QUIT reaches nginx like the signal itself: its graceful stop, then this process exits.
  if (options.dieWithParent === true) shell.dieWithParent('the parent process (supervisord) is gone: stopping nginx gracefully', () => shell.raise('SIGQUIT'))
  const values = nginxValues(env, home)
  const conf = join(values.RUN_DIR!, 'nginx.conf')
  await stopLeftover(conf, join(values.RUN_DIR!, 'nginx.pid'), log, 5000)
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(values.RUN_DIR!, 'nginx-temp', d), { recursive: true, mode: 0o700 })
  const logConfig = loadLogConfig(env)
  const pidfile = join(values.RUN_DIR!, 'nginx.pid')
  const reopen = (): boolean => {
    const pid = readPid(pidfile)
    if (pid === null || !isAlive(pid)) return false
    process.kill(pid, 'SIGUSR1')
    return true
  }
  const rotation =
    logConfig.dir === '' ? null : new AccessLogRotation(join(logConfig.dir, ACCESS_LOG_FILE), { maxBytes: logConfig.accessMaxBytes, keep: logConfig.accessKeep }, reopen, log)
  const access = rotation === null ? relayFifo(values.ACCESS_LOG!, output) : null
  rotation?.start()
  const first = renderChecked(env, home, conf)
  if (first.error !== null) {
    access?.destroy()
    rotation?.stop()
    log.fatal({ conf, output: first.error }, 'nginx configuration rejected by nginx -t')
    return 1
  }
  let version = options.watcher?.current.version ?? ''
  const startedAt = new Date().toISOString()
  writeState(values.RUN_DIR!, 'nginx', version, startedAt)
  options.watcher?.on('change', ({ next, changed }) => {
    // A new configuration beside the running one; it replaces it only once nginx -t accepts it.
    const candidate = `${conf}.next`
    let result: { values: Record<string, string>; error: string | null }
    try {
      result = renderChecked(next.env, home, candidate)
    } catch (err) {
      result = { values: {}, error: (err as Error).message }
    }
    if (result.error !== null) {
      log.error({ version: next.version, changed, output: result.error }, `config change refused by nginx -t: ${result.error.split('\n')[0]}; nginx keeps the last good configuration`)
      return
    }
    version = next.version
    writeState(values.RUN_DIR!, 'nginx', version, startedAt)
    const logs = loadLogConfig(next.env)
    output.setLimits?.(logs.maxBytes, logs.keep)
    rotation?.setLimits({ maxBytes: logs.accessMaxBytes, keep: logs.accessKeep })
    log.level = next.server.logLevel
    if (readFileSync(candidate, 'utf8') === readFileSync(conf, 'utf8')) {
      log.info({ version, changed }, 'config applied: nothing changes for nginx')
      return
    }
    renameSync(candidate, conf)
    const pid = readPid(pidfile)
    if (pid !== null && isAlive(pid)) process.kill(pid, 'SIGHUP')
    log.info({ version, changed, listen: result.values.LISTEN }, 'config applied: nginx reloaded (HUP) with the new configuration')
  })
  options.watcher?.start()
  // Five quick deaths in a row: exit, and supervisord's backoff takes over.
  let code = 0
  for (let quick = 0; quick < 5 && !stopAsked; ) {
    log.info({ conf, version, listen: values.LISTEN, upstream: values.SERVER_SOCKET, push: values.PUSH_BIND }, 'starting nginx')
    const startedAt = Date.now()
    code = await runLogged('nginx', 'nginx', ['-e', 'stderr', '-c', conf], output, log, { ...env, TZ: 'UTC' }, (forward) => (nginx = forward))
    if (stopAsked) break
    quick = Date.now() - startedAt < 10_000 ? quick + 1 : 1
    log.error({ code, quickDeaths: quick }, 'nginx exited without being asked to: starting it again')
    await new Promise((r) => setTimeout(r, quick <= 1 ? 0 : 250 * 2 ** quick))
  }
  options.watcher?.close()
  access?.destroy()
  rotation?.stop()
  return code
}

/**
 * Without a log directory: nginx writes access lines into a FIFO that this process relays to its
 * own output. Opened read-write so that opening never blocks and nginx restarts never end it, and
 * before nginx -t, which opens the FIFO for writing: that blocks until there is a reader.
 */
function relayFifo(fifo: string, output: ProcessShell['output']): Socket {
  if (!existsSync(fifo)) {
    const made = spawnSync('mkfifo', ['-m', '600', fifo], { encoding: 'utf8' })
    if (made.status !== 0) throw new ForkyardError(codes.LAUNCH, `Cannot create the access-log FIFO ${fifo}: ${made.stderr}`)
  }
  const access = new Socket({ fd: openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK), readable: true, writable: false })
  relayLines(access, output, { wrap: (line) => wrapPlainLine('nginx', 0, line), trusted: true })
  return access
}
