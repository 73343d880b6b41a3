/**
 * A real redis-server (Debian's package) for a test: on a free loopback port, in its own directory,
 * with or without its append-only file; kill -9 and restart on the same port and directory; always
 * stopped at the end. `scripts/system-deps.sh test` installs redis-server when it is missing.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import { Redis } from 'ioredis'
import { freePort, sleep, tempDir, until } from './server.js'

export interface RedisOptions {
  /** appendonly yes with appendfsync always: every acknowledged write survives kill -9. Default false. */
  aof?: boolean
  /** Address to bind (default 127.0.0.1); a namespace test passes the namespace's address. */
  bind?: string
  port?: number
  /** Command prefix, e.g. ['ip', 'netns', 'exec', 'fy-redis']. */
  wrap?: string[]
}

export interface RedisServer {
  port: number
  host: string
  url: string
  dir: string
  pid: () => number
  /** kill -9 of redis-server; resolves once it is gone. */
  kill: () => Promise<void>
  /** Starts it again on the same port and directory (with its AOF when it has one). */
  start: (options?: { aof?: boolean }) => Promise<void>
  /** A client for the test's own checks (closed at the end). */
  client: () => Redis
  stop: () => Promise<void>
}

export function redisServerPath(): string {
  const r = spawnSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' })
  const path = r.stdout.trim()
  if (path === '') throw new Error('redis-server not found: run `make test-deps` (scripts/system-deps.sh test installs Debian\'s redis-server)')
  return path
}

export async function startRedis(t: TestContext, options: RedisOptions = {}): Promise<RedisServer> {
  const dir = tempDir('fy-redis-')
  const host = options.bind ?? '127.0.0.1'
  const port = options.port ?? (await freePort())
  let aof = options.aof ?? false
  let child: ChildProcess | null = null
  let exited: Promise<void> = Promise.resolve()
  const clients: Redis[] = []
  const server = redisServerPath()

  const launch = async (): Promise<void> => {
    const args = [
      '--port', String(port), '--bind', host, '--dir', dir, '--save', '', '--daemonize', 'no', '--protected-mode', 'no',
      '--appendonly', aof ? 'yes' : 'no', '--appendfsync', 'always', '--logfile', join(dir, 'redis.log'),
    ]
    const wrap = options.wrap ?? []
    const cmd = wrap.length > 0 ? wrap[0]! : server
    const c = spawn(cmd, [...wrap.slice(1), ...(wrap.length > 0 ? [server] : []), ...args], { stdio: 'ignore' })
    child = c
    exited = new Promise((resolve) => c.once('exit', () => resolve()))
    if (wrap.length > 0) {
      // Inside a namespace the test process cannot reach: ask redis-cli there.
      await until(`redis-server answers on ${host}:${port} in ${wrap.join(' ')}`, () => {
        const r = spawnSync(wrap[0]!, [...wrap.slice(1), 'redis-cli', '-h', host, '-p', String(port), 'ping'], { encoding: 'utf8', timeout: 2000 })
        return r.stdout?.trim() === 'PONG'
      }, 10_000, 100)
      return
    }
    const probe = new Redis({ host, port, lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, connectTimeout: 500 })
    probe.on('error', () => undefined)
    try {
      await until(`redis-server answers on ${host}:${port}`, async () => {
        try {
          if (probe.status !== 'ready') await probe.connect()
          return (await probe.ping()) === 'PONG'
        } catch {
          probe.disconnect()
          return false
        }
      }, 10_000, 100)
    } finally {
      probe.disconnect()
    }
  }

  const kill = async (): Promise<void> => {
    const c = child
    if (c === null || c.exitCode !== null || c.signalCode !== null) return
    c.kill('SIGKILL')
    await Promise.race([exited, sleep(5000)])
    child = null
  }

  await launch()
  const handle: RedisServer = {
    port,
    host,
    url: `redis://${host}:${port}/0`,
    dir,
    pid: () => child?.pid ?? 0,
    kill,
    start: async (o = {}) => {
      if (o.aof !== undefined) aof = o.aof
      await launch()
    },
    client: () => {
      const c = new Redis({ host, port, maxRetriesPerRequest: 1 })
      c.on('error', () => undefined)
      clients.push(c)
      return c
    },
    stop: async () => {
      for (const c of clients.splice(0)) c.disconnect()
      await kill()
    },
  }
  t.after(() => handle.stop())
  return handle
}
