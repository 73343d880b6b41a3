/**
 * Push memory per idle connection: RSS of the push process with N idle WebSocket connections
 * (each subscribed to one channel, perMessageDeflate off) minus its RSS with none, divided by N;
 * one plain `ws` process (bench/ws-single.mjs) measured the same way in the same run.
 *
 *   npx tsc -p tsconfig.json
 *   flock /tmp/forkyard-bench.lock node --import tsx bench/push-memory.ts [--connections 10000] [--clients 4]
 *
 * The connections come from --clients processes on 127.0.0.1 (each opens connections/clients);
 * the servers and the clients run with `ulimit -n` raised to the hard limit. RSS is read from
 * /proc/<pid>/status after a forced settle: 3 s without new connections, sampled 5 times 200 ms
 * apart, the median. Writes bench/results/push-memory-<date>.json.
 */
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { freePort, hasExited, httpOk, positiveInt, sleep, startLogged, runBench, stop, waitUntil, type Proc } from './lib/proc.js'

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url))
const FORKYARD = here('../dist/bin/forkyard.js')
const SINGLE = here('ws-single.mjs')
const CLIENTS = here('push-idle-clients.mjs')

const { values } = parseArgs({ options: { connections: { type: 'string', default: '10000' }, clients: { type: 'string', default: '4' } } })
const connections = positiveInt('connections', values.connections)
const clientProcs = positiveInt('clients', values.clients)

/** Runs `node args` with the open-file limit raised to the hard limit (exec keeps the PID). */
function startNode(args: string[], env: NodeJS.ProcessEnv, log: string): Proc {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ')
  return startLogged('/bin/sh', ['-c', `ulimit -n "$(ulimit -Hn)" && exec ${quoted}`], env, log)
}

function cleanEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith('FORKYARD_') && k !== 'NODE_OPTIONS') env[k] = v
  return { ...env, ...extra }
}

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
  if (m === null) throw new Error(`no VmRSS for ${pid}`)
  return Number(m[1])
}

async function settledRss(pid: number): Promise<number> {
  await sleep(3000)
  const samples: number[] = []
  for (let i = 0; i < 5; i++) {
    samples.push(rssKb(pid))
    await sleep(200)
  }
  return samples.sort((a, b) => a - b)[2]!
}

async function waitLog(proc: Proc, log: string, text: string, timeoutMs = 10_000): Promise<void> {
  await waitUntil(`${JSON.stringify(text)} in ${log}`, Math.ceil(timeoutMs / 100), 100, () => {
    if (hasExited(proc)) throw new Error(`exited; see ${log}`)
    return readFileSync(log, 'utf8').includes(text)
  })
}

interface Measured {
  system: string
  connections: number
  opened: number
  rssIdleKb: number
  rssConnectedKb: number
  perConnectionKb: number
}

async function measure(system: string, dir: string, start: () => Promise<{ url: string; pid: number; stop: () => Promise<void> }>): Promise<Measured> {
  const server = await start()
  const clients: Proc[] = []
  try {
    // A first round of connections warms the code paths (and the heap's young generation) up,
    // as a push process that has served before; the baseline is taken after they are gone.
    const warm = startNode([CLIENTS], cleanEnv({ URL: server.url, COUNT: '200' }), join(dir, `${system}-warm.log`))
    await waitLog(warm, join(dir, `${system}-warm.log`), '"ready"', 60_000)
    await stop(warm)
    const idle = await settledRss(server.pid)
    const per = Math.ceil(connections / clientProcs)
    for (let i = 0; i < clientProcs; i++) {
      const log = join(dir, `${system}-clients-${i}.log`)
      const c = startNode([CLIENTS], cleanEnv({ URL: server.url, COUNT: String(per) }), log)
      clients.push(c)
      await waitLog(c, log, '"ready"', 90_000)
    }
    let opened = 0
    for (let i = 0; i < clientProcs; i++) opened += (JSON.parse(readFileSync(join(dir, `${system}-clients-${i}.log`), 'utf8').trim().split('\n').at(-1)!) as { open: number }).open
    const connected = await settledRss(server.pid)
    const result = { system, connections: per * clientProcs, opened, rssIdleKb: idle, rssConnectedKb: connected, perConnectionKb: (connected - idle) / opened }
    process.stderr.write(`${system}: ${opened} connections, RSS ${idle} -> ${connected} kB: ${result.perConnectionKb.toFixed(2)} kB per connection\n`)
    return result
  } finally {
    for (const c of clients) await stop(c)
    await server.stop()
  }
}

async function startForkyard(dir: string): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const port = await freePort()
  const envFile = join(dir, 'empty.env')
  writeFileSync(envFile, '')
  const env = cleanEnv({ FORKYARD_RUN_DIR: join(dir, 'run'), FORKYARD_PUSH_BIND: `127.0.0.1:${port}`, FORKYARD_PUSH_CONN_RATE: '1000000' })
  const bridge = startNode([FORKYARD, 'bridge', '--env-file', envFile], env, join(dir, 'bridge.log'))
  await waitLog(bridge, join(dir, 'bridge.log'), '"bridge listening"')
  const push = startNode([FORKYARD, 'push', '--env-file', envFile], env, join(dir, 'push.log'))
  await waitLog(push, join(dir, 'push.log'), '"push listening"')
  await waitUntil('push /readyz', 100, 100, () => httpOk(`http://127.0.0.1:${port}/readyz`))
  return {
    url: `ws://127.0.0.1:${port}/ws`,
    pid: push.pid,
    stop: async () => {
      await stop(push)
      await stop(bridge)
    },
  }
}

async function startSingle(dir: string): Promise<{ url: string; pid: number; stop: () => Promise<void> }> {
  const port = await freePort()
  const log = join(dir, 'single.log')
  const proc = startNode([SINGLE], cleanEnv({ PORT: String(port) }), log)
  await waitLog(proc, log, 'ready')
  return { url: `ws://127.0.0.1:${port}/ws`, pid: proc.pid, stop: () => stop(proc) }
}

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'forkyard-bench-mem-'))
  const forkyard = await measure('forkyard', dir, () => startForkyard(dir))
  const single = await measure('single', dir, () => startSingle(dir))
  const ratio = forkyard.perConnectionKb / single.perConnectionKb
  const text = [
    '',
    `push memory: ${connections} idle connections from ${clientProcs} client processes`,
    `  forkyard push: ${forkyard.perConnectionKb.toFixed(2)} kB per connection (RSS ${forkyard.rssIdleKb} -> ${forkyard.rssConnectedKb} kB, ${forkyard.opened} open)`,
    `  one ws process: ${single.perConnectionKb.toFixed(2)} kB per connection (RSS ${single.rssIdleKb} -> ${single.rssConnectedKb} kB, ${single.opened} open)`,
    `  forkyard / single: ${ratio.toFixed(2)}; goal: at most 20 kB per connection`,
    '',
  ].join('\n')
  process.stdout.write(text)
  const date = new Date()
  const out = here('results/')
  mkdirSync(out, { recursive: true })
  const file = join(out, `push-memory-${date.toISOString().slice(0, 19).replace(/:/g, '-')}.json`)
  writeFileSync(file, JSON.stringify({ date: date.toISOString(), node: process.version, connections, clientProcs, forkyard, single, ratio }, null, 2) + '\n')
  process.stdout.write(`Results written to ${file}\n`)
  rmSync(dir, { recursive: true, force: true })
}

// Ctrl-C or a kill: the processes started are stopped before going.
await runBench(main)
