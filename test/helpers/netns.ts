/**
 * Several hosts on one machine for the multi-host tests and bench: Linux network namespaces joined
 * by veth pairs to a bridge in a load-balancer namespace, addresses that exist only inside them,
 * a redis-server in its own namespace, and the whole stack (`forkyard up`, as a user runs it in a
 * project directory with its own .env) in each host namespace. Everything made here is removed at
 * the end: stacks stopped (`forkyard down`, then kill -9 by PID of what is left), namespaces deleted.
 *
 *   <p>-lb   10.231.0.254 on the bridge br0; the load balancer (nginx) and the clients run here
 *   <p>-h1…  10.231.0.1, .2, .3: one forkyard stack each
 *   <p>-db   10.231.0.4: redis-server
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { stackProcesses } from '../../server/process/leftovers.js'
import { procStat } from '../../server/process/pidfile.js'
import { bin, root, sleep, tempDir, until } from './server.js'

export const SUBNET = '10.231.0'
export const LB_ADDR = `${SUBNET}.254`
export const DB_ADDR = `${SUBNET}.4`

/** What the helpers need of a test context: somewhere to register cleanups (a bench passes its own). */
export interface Cleanups {
  after: (fn: () => unknown) => void
}

export interface Net {
  prefix: string
  /** Registers a cleanup, run before the namespaces are deleted, last registered first. */
  defer: (fn: () => unknown) => void
  /** Namespace names: h1…hN, db, lb. */
  ns: (role: string) => string
  hostAddr: (i: number) => string
  /** Runs a command inside a namespace, synchronously (bounded by timeoutMs). */
  run: (role: string, cmd: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number }) => { status: number | null; out: string }
  /** Starts a long-running command inside a namespace; stopped by PID at the end. */
  spawnIn: (role: string, cmd: string[], options?: { env?: NodeJS.ProcessEnv; cwd?: string }) => ChildProcess
  /** The command prefix running something in a namespace (for startRedis's wrap). */
  wrap: (role: string) => string[]
  /** Cuts (down) or restores (up) a namespace's link to the bridge. */
  link: (role: string, up: boolean) => void
}

function ip(args: string[]): void {
  const r = spawnSync('ip', args, { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) throw new Error(`Expected \`ip ${args.join(' ')}\` to succeed, got exit ${r.status}: ${r.stderr ?? ''}${r.error?.message ?? ''}`)
}

/** Why namespaces cannot be made here ('' when they can): not root, or `ip netns add` refused. */
export function netnsUnavailable(): string {
  if (process.getuid?.() !== 0) return 'network namespaces need root (ip netns add)'
  const probe = `fy${process.pid}-probe`
  const r = spawnSync('ip', ['netns', 'add', probe], { encoding: 'utf8', timeout: 10_000 })
  if (r.status !== 0) return `ip netns add failed (exit ${r.status}): ${(r.stderr ?? r.error?.message ?? '').trim()}`
  spawnSync('ip', ['netns', 'del', probe], { timeout: 10_000 })
  return ''
}

export function makeNet(t: Cleanups, hosts: number): Net {
  const prefix = `fy${process.pid}`
  const ns = (role: string): string => `${prefix}-${role}`
  const roles = [...Array.from({ length: hosts }, (_, i) => `h${i + 1}`), 'db']
  const addr = (role: string): string => (role === 'db' ? DB_ADDR : `${SUBNET}.${role.slice(1)}`)
  const children: ChildProcess[] = []
  const made: string[] = []
  const deferred: (() => unknown)[] = []
  t.after(async () => {
    for (const fn of deferred.reverse()) {
      try {
        await fn()
      } catch (err) {
        process.stderr.write(`cleanup failed: ${(err as Error).message}\n`)
      }
    }
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL')
    await sleep(200)
    for (const n of made.reverse()) spawnSync('ip', ['netns', 'del', n], { timeout: 10_000 })
  })
  const add = (role: string): void => {
    ip(['netns', 'add', ns(role)])
    made.push(ns(role))
    ip(['-n', ns(role), 'link', 'set', 'lo', 'up'])
  }
  add('lb')
  ip(['-n', ns('lb'), 'link', 'add', 'br0', 'type', 'bridge'])
  ip(['-n', ns('lb'), 'addr', 'add', `${LB_ADDR}/24`, 'dev', 'br0'])
  ip(['-n', ns('lb'), 'link', 'set', 'br0', 'up'])
  for (const role of roles) {
    add(role)
    // The veth pair is made inside the lb namespace; its far end moves into the host's as eth0.
    ip(['-n', ns('lb'), 'link', 'add', `v-${role}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns(role)])
    ip(['-n', ns('lb'), 'link', 'set', `v-${role}`, 'master', 'br0', 'up'])
    ip(['-n', ns(role), 'addr', 'add', `${addr(role)}/24`, 'dev', 'eth0'])
    ip(['-n', ns(role), 'link', 'set', 'eth0', 'up'])
  }
  const wrap = (role: string): string[] => ['ip', 'netns', 'exec', ns(role)]
  return {
    prefix,
    defer: (fn) => deferred.push(fn),
    ns,
    hostAddr: (i) => `${SUBNET}.${i}`,
    wrap,
    run: (role, cmd, options = {}) => {
      const r = spawnSync('ip', ['netns', 'exec', ns(role), ...cmd], { env: options.env ?? process.env, cwd: options.cwd, encoding: 'utf8', timeout: options.timeoutMs ?? 180_000 })
      return { status: r.status, out: `${r.stdout ?? ''}${r.stderr ?? ''}${r.error !== undefined ? r.error.message : ''}` }
    },
    spawnIn: (role, cmd, options = {}) => {
      const c = spawn('ip', ['netns', 'exec', ns(role), ...cmd], { env: options.env ?? process.env, cwd: options.cwd, stdio: ['pipe', 'pipe', 'pipe'] })
      children.push(c)
      return c
    },
    link: (role, up) => ip(['-n', ns('lb'), 'link', 'set', `v-${role}`, up ? 'up' : 'down']),
  }
}

export interface HostStack {
  role: string
  addr: string
  dir: string
  runDir: string
  logDir: string
  env: Record<string, string>
  url: (path: string) => string
  /** `forkyard <args>` in the host's namespace and project directory. */
  cli: (...args: string[]) => { status: number | null; out: string }
  /** `forkyard up` in the namespace; resolves once it returned 0 (ready), rejects with its output. */
  up: () => Promise<void>
  /** Every process of this host's stack: supervisord and its descendants, and whatever carries its run directory. */
  pids: () => number[]
  /** kill -9 of every process of the host's stack; resolves once all are gone. */
  killAll: () => Promise<number[]>
  /** pid of the jobs process (the arbiter's child running tasks and singletons), or null. */
  jobsPid: () => number | null
}

function childrenOf(): Map<number, number[]> {
  const out = new Map<number, number[]>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const st = procStat(Number(name))
    if (st === null) continue
    const list = out.get(st.ppid) ?? []
    list.push(Number(name))
    out.set(st.ppid, list)
  }
  return out
}

function descendants(pid: number): number[] {
  const kids = childrenOf()
  const out: number[] = []
  const queue = [pid]
  for (let i = 0; i < queue.length && i < 10_000; i++) {
    for (const k of kids.get(queue[i]!) ?? []) {
      out.push(k)
      queue.push(k)
    }
  }
  return out
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

/**
 * A project directory for host `i` with its own .env (`values` merged over the defaults here), the
 * stack started in the host's namespace the way a user starts it: `forkyard up` (what `make up`
 * runs) with the project directory as working directory. Not started: call up().
 */
export function hostStack(net: Net, base: string, i: number, values: Record<string, string>): HostStack {
  const role = `h${i}`
  const dir = join(base, role)
  mkdirSync(dir, { recursive: true })
  const addr = net.hostAddr(i)
  const env: Record<string, string> = {
    FORKYARD_DOCKER: '0',
    FORKYARD_LISTEN_HOST: addr,
    FORKYARD_PORT: '8080',
    FORKYARD_RUN_DIR: join(dir, 'run'),
    FORKYARD_LOG_DIR: join(dir, 'logs'),
    FORKYARD_TASKS_DIR: join(dir, 'data/tasks'),
    FORKYARD_BRIDGE_DATA_DIR: join(dir, 'data/bridge'),
    // Each namespace has its own loopback: the same push port on every host.
    FORKYARD_PUSH_BIND: '127.0.0.1:8001',
    FORKYARD_PUSH_SECRET: 'multi-host-secret-multi-host-secret!',
    FORKYARD_WORKERS: '1',
    FORKYARD_GRACEFUL_TIMEOUT: '5s',
    FORKYARD_LOG_LEVEL: 'info',
    ...values,
  }
  writeFileSync(join(dir, '.env'), Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''), { mode: 0o600 })
  // Nothing of .env in the environment: every program reads the file, as after `make up`.
  const procEnv = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' }
  const cli = (...args: string[]): { status: number | null; out: string } => net.run(role, [process.execPath, bin, ...args], { env: procEnv, cwd: dir, timeoutMs: 150_000 })
  const runDir = env.FORKYARD_RUN_DIR!
  const supervisord = (): number | null => {
    try {
      const pid = Number(readFileSync(join(runDir, 'supervisord.pid'), 'utf8').trim())
      return pid > 0 && alive(pid) ? pid : null
    } catch {
      return null
    }
  }
  const pids = (): number[] => {
    const s = supervisord()
    const set = new Set<number>(s === null ? [] : [s, ...descendants(s)])
    for (const p of stackProcesses(runDir)) set.add(p.pid)
    return [...set].sort((a, b) => a - b)
  }
  const h: HostStack = {
    role,
    addr,
    dir,
    runDir,
    logDir: env.FORKYARD_LOG_DIR!,
    env,
    url: (path) => `http://${addr}:8080${path}`,
    cli,
    up: () =>
      new Promise<void>((resolve, reject) => {
        const c = spawn('ip', ['netns', 'exec', net.ns(role), process.execPath, bin, 'up'], { env: procEnv, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] })
        let out = ''
        c.stdout.on('data', (d: Buffer) => (out += d.toString()))
        c.stderr.on('data', (d: Buffer) => (out += d.toString()))
        const timer = setTimeout(() => c.kill('SIGKILL'), 150_000)
        c.once('exit', (code) => {
          clearTimeout(timer)
          if (code === 0) resolve()
          else reject(new Error(`Expected forkyard up on ${role} to succeed, got exit ${code}:\n${out}`))
        })
      }),
    pids,
    killAll: async () => {
      const list = pids()
      // A host that dies (power cut, kernel panic) takes every process at once: frozen first, so
      // that none sees another die and reacts (a jobs process releasing its singleton lease when
      // its arbiter goes would be a graceful stop, not a death), then killed.
      for (const pid of list) {
        try {
          process.kill(pid, 'SIGSTOP')
        } catch {
          // already gone
        }
      }
      for (const pid of list) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // already gone
        }
      }
      // Children forked in between (a restart racing the kills): bounded rounds.
      for (let round = 0; round < 20; round++) {
        const left = pids().filter(alive)
        if (left.length === 0) break
        for (const pid of left) {
          try {
            process.kill(pid, 'SIGKILL')
          } catch {
            // gone
          }
        }
        await sleep(100)
      }
      await until(`every process of ${role} gone`, () => pids().filter(alive).length === 0, 10_000, 100)
      return list
    },
    jobsPid: () => {
      for (const pid of pids()) {
        try {
          const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8')
          if (/jobs/.test(cmd) && !/supervisord/.test(cmd)) return pid
        } catch {
          // gone
        }
      }
      return null
    },
  }
  net.defer(async () => {
    const r = cli('down')
    if (r.status !== 0) {
      for (const pid of pids()) {
        try {
          process.kill(pid, 'SIGKILL')
        } catch {
          // gone
        }
      }
    }
  })
  return h
}

/** The load balancer of the README: nginx in the lb namespace, the hosts as upstream. Started here, stopped by PID. */
export async function startBalancer(net: Net, hosts: number[], options: { port?: number; readTimeout?: string } = {}): Promise<{ url: string; wsUrl: string; conf: string; errorLog: string }> {
  const dir = tempDir('fy-lb-')
  const port = options.port ?? 8080
  const template = readFileSync(join(root, 'test/fixtures/multi-host-lb.conf'), 'utf8')
  const conf = template
    .replaceAll('${LB_DIR}', dir)
    .replaceAll('${LISTEN}', `${LB_ADDR}:${port}`)
    .replaceAll('${UPSTREAMS}', hosts.map((i) => `server ${net.hostAddr(i)}:8080 max_fails=1 fail_timeout=2s;`).join('\n        '))
    .replaceAll('${WS_UPSTREAMS}', hosts.map((i) => `server ${net.hostAddr(i)}:8080 max_fails=0;`).join('\n        '))
    .replaceAll('${READ_TIMEOUT}', options.readTimeout ?? '3s')
  for (const d of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, 'temp', d), { recursive: true })
  const file = join(dir, 'nginx.conf')
  writeFileSync(file, conf)
  const test = net.run('lb', ['nginx', '-t', '-c', file], { timeoutMs: 10_000 })
  if (test.status !== 0) throw new Error(`Expected the load balancer's nginx.conf to pass nginx -t, got:\n${test.out}`)
  const child = net.spawnIn('lb', ['nginx', '-c', file])
  let err = ''
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()))
  child.stdout!.resume()
  net.defer(async () => {
    // SIGTERM: nginx's fast stop, its workers with it.
    const pid = Number(readFileSync(join(dir, 'nginx.pid'), 'utf8').trim())
    try {
      process.kill(pid, 'SIGTERM')
    } catch {
      // gone
    }
    await until('load balancer stopped', () => !alive(pid), 5000, 50).catch(() => process.kill(-pid, 'SIGKILL'))
  })
  await until('load balancer listening', () => {
    try {
      return readFileSync(join(dir, 'nginx.pid'), 'utf8').trim() !== ''
    } catch {
      return child.exitCode !== null ? Promise.reject(new Error(`load balancer nginx exited: ${err}`)) : false
    }
  }, 10_000, 50)
  return { url: `http://${LB_ADDR}:${port}`, wsUrl: `ws://${LB_ADDR}:${port}/ws`, conf, errorLog: join(dir, 'error.log') }
}

export interface ClientReport {
  /** The client's connection: connecting, open, closed (between attempts), stopped. */
  state: string
  /** Close codes and reasons seen, with counts ("1006": the connection failed or dropped). */
  closes: Record<string, number>
  /** Messages the server sent again on the wire (resume overlap), dropped by the client: with open({wire: true}). */
  wireRepeats: number
  upstreams: string[]
  ranges: Record<string, [number, number][]>
  dup: number
  disorder: number
  gaps: { channel: string; reason: string; epoch: string; offset: number; missed?: [number, number]; at: number }[]
  opens: number
  start: { offset: number | null; epoch: string | null } | null
  last: { epoch: string; offset: number } | null
}

export interface Agent {
  call: <T = Record<string, unknown>>(cmd: Record<string, unknown>, timeoutMs?: number) => Promise<T & { ok: boolean; error?: string }>
  http: (method: string, url: string) => Promise<{ status: number; text: string; upstream: string | null }>
  stderr: () => string
}

/** test/fixtures/multi-host-clients.mjs in a namespace, driven by JSON lines. */
export function startAgent(net: Net, role: string): Agent {
  const child = net.spawnIn(role, [process.execPath, join(root, 'test/fixtures/multi-host-clients.mjs')], { env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp' } })
  const waiting = new Map<number, (v: Record<string, unknown>) => void>()
  let err = ''
  let pending = ''
  let next = 1
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-5000)))
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    pending += chunk
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const l of lines) {
      try {
        const m = JSON.parse(l) as { id: number }
        waiting.get(m.id)?.(m)
        waiting.delete(m.id)
      } catch {
        // not ours
      }
    }
  })
  const call = async <T>(cmd: Record<string, unknown>, timeoutMs = 60_000): Promise<T & { ok: boolean; error?: string }> => {
    const id = next++
    const answer = new Promise<Record<string, unknown>>((res) => waiting.set(id, res))
    child.stdin!.write(`${JSON.stringify({ id, ...cmd })}\n`)
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_res, rej) => {
      timer = setTimeout(() => rej(new Error(`Expected the clients process to answer ${JSON.stringify(cmd)} within ${timeoutMs} ms, got nothing (exit ${child.exitCode}); stderr: ${err}`)), timeoutMs)
    })
    try {
      return (await Promise.race([answer, timeout])) as T & { ok: boolean; error?: string }
    } finally {
      clearTimeout(timer)
    }
  }
  return {
    call,
    http: async (method, url) => {
      const r = await call<{ status: number; text: string; upstream: string | null }>({ cmd: 'http', method, url })
      if (!r.ok) return { status: 0, text: r.error ?? '', upstream: null }
      return r
    },
    stderr: () => err,
  }
}

export interface PublisherRun {
  acked: { i: number; offset: number; epoch: string }[]
  failed: { i: number; code: string }[]
  done: Promise<{ acked: number; failed: number; ms: number }>
  raw: () => string
}

/** test/fixtures/multi-host-publisher.mjs in a host's namespace and project directory. */
export function startPublisher(net: Net, host: HostStack, env: { channel: string; count: number; intervalMs: number }): PublisherRun {
  const child = net.spawnIn(host.role, [process.execPath, join(root, 'test/fixtures/multi-host-publisher.mjs')], {
    cwd: host.dir,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '/tmp', CHANNEL: env.channel, COUNT: String(env.count), INTERVAL_MS: String(env.intervalMs) },
  })
  const run: PublisherRun = { acked: [], failed: [], done: null as unknown as PublisherRun['done'], raw: () => '' }
  let out = ''
  let err = ''
  let pending = ''
  let resolveDone: (v: { acked: number; failed: number; ms: number }) => void = () => undefined
  run.done = new Promise((res, rej) => {
    resolveDone = res
    child.once('exit', (code) => setTimeout(() => rej(new Error(`Expected the publisher to print done, it exited with ${code}: ${err.slice(-2000)} ${out.slice(-2000)}`)), 100))
  })
  child.stderr!.on('data', (d: Buffer) => (err = (err + d.toString()).slice(-5000)))
  child.stdout!.setEncoding('utf8')
  child.stdout!.on('data', (chunk: string) => {
    out = (out + chunk).slice(-5000)
    pending += chunk
    const lines = pending.split('\n')
    pending = lines.pop() ?? ''
    for (const l of lines) {
      try {
        const m = JSON.parse(l) as { a?: [number, number, string]; f?: [number, string]; done?: boolean; acked: number; failed: number; ms: number }
        if (m.a !== undefined) run.acked.push({ i: m.a[0], offset: m.a[1], epoch: m.a[2] })
        else if (m.f !== undefined) run.failed.push({ i: m.f[0], code: m.f[1] })
        else if (m.done === true) resolveDone(m)
      } catch {
        // not a JSON line
      }
    }
  })
  run.raw = () => `stdout: ${out}\nstderr: ${err}`
  return run
}

export interface DeliveryCheck {
  clients: number
  /** Acknowledged messages a client never received and was never told about (a silent gap). */
  missing: number
  /** Acknowledged messages not received, each covered by a gap or reset the client was told of. */
  excused: number
  dup: number
  disorder: number
  gapsTold: number
  wireRepeats: number
  /** The first few problems, for the assertion message. */
  examples: string[]
}

/**
 * Every client against every acknowledged (epoch, offset): received once and in order (the
 * client's ranges), or covered by a gap or reset it was told of; never silently missing.
 */
export function checkDelivery(reports: ClientReport[], acked: { offset: number; epoch: string }[]): DeliveryCheck {
  const byEpoch = new Map<string, number[]>()
  for (const a of acked) (byEpoch.get(a.epoch) ?? byEpoch.set(a.epoch, []).get(a.epoch)!).push(a.offset)
  const out: DeliveryCheck = { clients: reports.length, missing: 0, excused: 0, dup: 0, disorder: 0, gapsTold: 0, wireRepeats: 0, examples: [] }
  for (const [ci, r] of reports.entries()) {
    out.dup += r.dup
    out.disorder += r.disorder
    out.gapsTold += r.gaps.length
    out.wireRepeats += r.wireRepeats
    if (r.dup + r.disorder > 0 && out.examples.length < 5) out.examples.push(`client ${ci}: ${r.dup} duplicated, ${r.disorder} out of order`)
    for (const [epoch, offsets] of byEpoch) {
      const ranges = r.ranges[epoch] ?? []
      const has = (o: number): boolean => ranges.some(([a, b]) => a <= o && o <= b)
      const lost: number[] = []
      for (const o of offsets) {
        if (r.start !== null && r.start.epoch === epoch && r.start.offset !== null && o <= r.start.offset) continue
        if (has(o)) continue
        const told = r.gaps.some((g) => g.epoch !== epoch || (g.missed !== undefined && g.missed[0] <= o && o <= g.missed[1]) || (g.reason !== 'offset-jump' && g.offset >= o))
        if (told) out.excused++
        else lost.push(o)
      }
      out.missing += lost.length
      if (lost.length > 0 && out.examples.length < 5) {
        out.examples.push(`client ${ci} (via ${r.upstreams.join(' -> ')}): ${lost.length} acknowledged offsets of epoch ${epoch} never received nor announced, first ${lost.slice(0, 5).join(',')}; received ${JSON.stringify(ranges.slice(0, 6))}; gaps told ${JSON.stringify(r.gaps.slice(0, 3))}`)
      }
    }
  }
  return out
}

/** The last warnings and errors of a host's programs, for a failure message. */
export function logTail(h: HostStack, programs = ['bridge', 'push', 'server'], max = 6): string {
  const out: string[] = []
  for (const p of programs) {
    const file = join(h.logDir, `${p}.log`)
    let text = ''
    try {
      text = readFileSync(file, 'utf8')
    } catch {
      continue
    }
    const bad = text.split('\n').filter((l) => /"level":"(warn|error|fatal)"/.test(l)).slice(-max)
    if (bad.length > 0) out.push(`${h.role} ${p}:\n  ${bad.map((l) => l.slice(0, 400)).join('\n  ')}`)
  }
  return out.join('\n')
}
