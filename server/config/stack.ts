/** Settings of the whole stack (nginx in front, supervisord around the processes). */
import { isAbsolute, resolve } from 'node:path'
import { ForkyardError, codes } from '../errors.js'
import { int, size, text, type Parser } from './parse.js'
import { readSection, type Schema } from './section.js'
import { trustedAddresses, type TrustedRange } from './trust.js'

export interface StackConfig {
  /** Port nginx listens on. */
  port: number
  /** Address nginx listens on: 127.0.0.1 on a host, 0.0.0.0 in the container. */
  listenHost: string
  /** The app module the workers serve. */
  app: string
  /** Largest request body nginx accepts (413 beyond). */
  bodyLimitBytes: number
  /** nginx worker processes ("auto" = one per CPU). */
  nginxWorkers: string
  /** Directory served at /static/. */
  staticDir: string
  /** `make up` with Docker Compose: auto (when an engine answers), never, always. */
  docker: 'auto' | 'never' | 'always'
  /** Compose files `make up` passes to Docker Compose, in order (overlays after the base file). */
  composeFiles: string[]
  /** Who may scrape GET /metrics through nginx (addresses, CIDR blocks; none = nobody). */
  metricsAllow: TrustedRange[]
}

const workers: Parser<string> = (name, raw) => {
  const s = raw.trim()
  if (s !== 'auto' && !/^[1-9]\d{0,2}$/.test(s)) throw new ForkyardError(codes.CONFIG, `Expected ${name} to be "auto" or a whole number from 1 to 999, got ${JSON.stringify(raw)}`)
  return s
}

const docker: Parser<StackConfig['docker']> = (name, raw) => {
  const v = raw.trim().toLowerCase()
  if (v === '' || v === 'auto') return 'auto'
  if (['0', 'false', 'no', 'never', 'native'].includes(v)) return 'never'
  if (['1', 'true', 'yes', 'always'].includes(v)) return 'always'
  throw new ForkyardError(codes.CONFIG, `Expected ${name} to be auto, 0 (native) or 1 (Docker Compose), got ${JSON.stringify(raw)}`)
}

const composeFiles: Parser<string[]> = (name, raw) => {
  const files = raw.split(',').map((f) => f.trim()).filter((f) => f !== '')
  if (files.length === 0 || files.some((f) => !/^[A-Za-z0-9_./-]+\.ya?ml$/.test(f))) {
    throw new ForkyardError(codes.CONFIG, `Expected ${name} to be compose files (.yml) separated by commas, e.g. docker-compose.yml,docker-compose.redis.yml, got ${JSON.stringify(raw)}`)
  }
  return files
}

export const stackSchema: Schema<StackConfig> = {
  port: { env: 'FORKYARD_PORT', parse: int(1, 65535), default: '8080' },
  listenHost: { env: 'FORKYARD_LISTEN_HOST', parse: text, default: '127.0.0.1' },
  app: { env: 'FORKYARD_APP', parse: text, default: 'example/app.mjs', apply: 'restart' },
  bodyLimitBytes: { env: 'FORKYARD_BODY_LIMIT', parse: size, default: '1MiB' },
  nginxWorkers: { env: 'FORKYARD_NGINX_WORKERS', parse: workers, default: '1' },
  staticDir: { env: 'FORKYARD_STATIC_DIR', parse: text, default: 'example/public' },
  docker: { env: 'FORKYARD_DOCKER', parse: docker, default: 'auto', apply: 'up' },
  composeFiles: { env: 'FORKYARD_COMPOSE_FILES', parse: composeFiles, default: 'docker-compose.yml', apply: 'up' },
  // Live: nginx is reloaded with the new allow lines.
  metricsAllow: { env: 'FORKYARD_METRICS_ALLOW', parse: trustedAddresses, default: '127.0.0.1,::1' },
}

/** `dir` is the project directory (where .env is, and where the programs run): relative paths in .env are relative to it. */
export function loadStackConfig(env: NodeJS.ProcessEnv, dir: string = process.cwd()): Readonly<StackConfig> {
  const c = readSection(stackSchema, env)
  if (!isAbsolute(c.app)) c.app = resolve(dir, c.app)
  if (!isAbsolute(c.staticDir)) c.staticDir = resolve(dir, c.staticDir)
  return Object.freeze(c)
}

/** host:port where nginx listens (FORKYARD_LISTEN_HOST, FORKYARD_PORT), as nginx's `listen` takes it. */
export function nginxListen(env: NodeJS.ProcessEnv): string {
  const { listenHost, port } = readSection(stackSchema, env)
  return `${listenHost.includes(':') ? `[${listenHost}]` : listenHost}:${port}`
}
