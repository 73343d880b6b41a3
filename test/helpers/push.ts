/**
 * A bridge and a push process for a test, plus WebSocket clients that record what they receive.
 */
import { join } from 'node:path'
import type { TestContext } from 'node:test'
import WebSocket from 'ws'
import { startProc, type Proc } from './proc.js'
import { freePort, tempDir, until } from './server.js'

export interface Stack {
  dir: string
  env: Record<string, string>
  pushPort: number
  bridge: Proc
  push: Proc
  startBridge: (extra?: Record<string, string>) => Promise<Proc>
  startPush: (extra?: Record<string, string>) => Promise<Proc>
  url: string
}

export async function startStack(t: TestContext, extra: { bridge?: Record<string, string>; push?: Record<string, string> } = {}): Promise<Stack> {
  const dir = tempDir('forkyard-push-')
  const pushPort = await freePort()
  const env = { FORKYARD_RUN_DIR: join(dir, 'run'), FORKYARD_PUSH_BIND: `127.0.0.1:${pushPort}`, FORKYARD_PUSH_SECRET: 'test-secret-test-secret-test-secret!' }
  const stack: Stack = {
    dir,
    env,
    pushPort,
    url: `ws://127.0.0.1:${pushPort}/ws`,
    bridge: null as unknown as Proc,
    push: null as unknown as Proc,
    startBridge: async (more = {}) => {
      const p = startProc(t, ['bridge'], { ...env, ...extra.bridge, ...more }, { cwd: dir })
      await p.waitLog((l) => l.msg === 'bridge listening', 'bridge listening')
      stack.bridge = p
      return p
    },
    startPush: async (more = {}) => {
      const p = startProc(t, ['push'], { ...env, ...extra.push, ...more }, { cwd: dir })
      await p.waitLog((l) => l.msg === 'push listening', 'push listening')
      stack.push = p
      return p
    },
  }
  await stack.startBridge()
  await stack.startPush()
  await pushReady(stack)
  return stack
}

/**
 * Until the push process's /readyz says ready (its heartbeat went through the bridge). On a
 * timeout the error holds its last /readyz answer and the last lines of both processes.
 */
export async function pushReady(stack: Stack, timeoutMs = 15_000): Promise<void> {
  let last = ''
  try {
    await until('push ready (heartbeat through the bridge)', async () => {
      const r = await fetch(`http://127.0.0.1:${stack.pushPort}/readyz`)
      last = `${r.status} ${await r.text()}`
      return r.status === 200
    }, timeoutMs)
  } catch (err) {
    const tail = (name: string, p: Proc): string => `${name}:\n${p.logs.slice(-12).map((l) => JSON.stringify(l)).join('\n')}\n${p.raw().slice(-2000)}`
    throw new Error(`${(err as Error).message}; last /readyz: ${last}\n${tail('bridge', stack.bridge)}\n${tail('push', stack.push)}`)
  }
}

export interface Recorder {
  ws: WebSocket
  messages: Record<string, unknown>[]
  closed: Promise<{ code: number; reason: string }>
  opened: Promise<void>
  send: (m: unknown) => void
}

export function connect(url: string, headers: Record<string, string> = {}): Recorder {
  const ws = new WebSocket(url, { headers })
  const messages: Record<string, unknown>[] = []
  ws.on('message', (d) => messages.push(JSON.parse(d.toString()) as Record<string, unknown>))
  const closed = new Promise<{ code: number; reason: string }>((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })))
  const opened = new Promise<void>((res, rej) => {
    ws.once('open', () => res())
    ws.once('error', rej)
  })
  return { ws, messages, closed, opened, send: (m) => ws.send(typeof m === 'string' ? m : JSON.stringify(m)) }
}
