/**
 * The kit's own nginx configuration (nginx/nginx.conf.template, rendered by the same code as
 * `forkyard nginx`) in front of any server on a Unix socket: the anchors of the benches run behind
 * exactly the nginx a forkyard user gets, access log to a file included.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { nginxValues, renderTemplate } from '../../server/stack/nginx.js'
import { freePort, hasExited, httpOk, startLogged, stop, waitUntil, type Proc } from './proc.js'

const HOME = fileURLToPath(new URL('../../', import.meta.url))

export interface Front {
  url: string
  /** The nginx master; its workers are its children. */
  proc: Proc
  accessLog: string
  stop: () => Promise<void>
}

/**
 * Starts nginx on a free 127.0.0.1 port proxying to `socket` (and /ws to `pushBind` when given),
 * with its access log in <dir>/logs/access.log. Resolves once `probePath` answers 200 through it.
 */
export async function startFront(dir: string, socket: string, options: { pushBind?: string; probePath?: string } = {}): Promise<Front> {
  const port = await freePort()
  const runDir = join(dir, 'front-run')
  const logDir = join(dir, 'front-logs')
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(runDir, 'nginx-temp', d), { recursive: true })
  mkdirSync(logDir, { recursive: true })
  const env = {
    FORKYARD_BIND: `unix:${socket}`,
    FORKYARD_RUN_DIR: runDir,
    FORKYARD_LOG_DIR: logDir,
    FORKYARD_PORT: String(port),
    FORKYARD_LISTEN_HOST: '127.0.0.1',
    FORKYARD_STATIC_DIR: dir,
    ...(options.pushBind === undefined ? {} : { FORKYARD_PUSH_BIND: options.pushBind }),
  }
  const conf = join(runDir, 'nginx.conf')
  writeFileSync(conf, renderTemplate(readFileSync(join(HOME, 'nginx/nginx.conf.template'), 'utf8'), nginxValues(env, HOME)))
  const log = join(dir, 'front.log')
  const proc = startLogged('nginx', ['-e', 'stderr', '-c', conf], { ...process.env, TZ: 'UTC' }, log)
  const url = `http://127.0.0.1:${port}/`
  const probe = `${url}${(options.probePath ?? '/healthz').replace(/^\//, '')}`
  await waitUntil(`nginx in front of ${socket}`, 100, 100, async () => {
    if (hasExited(proc)) throw new Error(`nginx exited during startup; see ${log}`)
    return httpOk(probe)
  })
  return { url, proc, accessLog: join(logDir, 'access.log'), stop: () => stop(proc) }
}
