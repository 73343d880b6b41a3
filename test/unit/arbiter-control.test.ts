import { test, type TestContext } from 'node:test'
import assert from 'node:assert/strict'
import { once } from 'node:events'
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { createConnection, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { controlRequest, listenControl, type ControlCommand } from '../../server/arbiter/control.js'

function tempSocketPath(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'forkyard-ctl-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'arbiter.sock')
}

async function listen(t: TestContext, path: string, handle: (cmd: ControlCommand) => Promise<unknown>): Promise<Server> {
  const server = await listenControl(path, handle)
  t.after(() => new Promise<void>((resolve) => server.close(() => resolve())))
  return server
}

/** Sends raw bytes on the control socket and returns everything the server answers before closing. */
async function rawExchange(path: string, payload: string): Promise<string> {
  const socket = createConnection(path)
  socket.setEncoding('utf8')
  let answer = ''
  socket.on('data', (chunk: string) => (answer += chunk))
  await once(socket, 'connect')
  socket.write(payload)
  await once(socket, 'close')
  return answer
}

test('controlRequest("status") returns the handler result', async (t) => {
  const path = tempSocketPath(t)
  const seen: ControlCommand[] = []
  await listen(t, path, async (cmd) => {
    seen.push(cmd)
    return { workers: 4, generation: 2 }
  })
  assert.deepEqual(await controlRequest(path, 'status'), { workers: 4, generation: 2 })
  assert.deepEqual(seen, ['status'])
})

test('each command reaches the handler by name', async (t) => {
  const path = tempSocketPath(t)
  await listen(t, path, async (cmd) => `did ${cmd}`)
  for (const cmd of ['status', 'reload', 'ttin', 'ttou', 'stop'] as const) {
    assert.equal(await controlRequest(path, cmd), `did ${cmd}`)
  }
})

test('a handler rejection comes back as a FORKYARD_ERR_CONTROL error with its message', async (t) => {
  const path = tempSocketPath(t)
  await listen(t, path, async () => {
    throw new Error('reload already in progress')
  })
  await assert.rejects(controlRequest(path, 'reload'), { code: 'FORKYARD_ERR_CONTROL', message: 'reload already in progress' })
})

test('an unknown command gets {ok:false} with an error naming the expected commands', async (t) => {
  const path = tempSocketPath(t)
  let calls = 0
  await listen(t, path, async () => {
    calls++
    return null
  })
  const answer = await rawExchange(path, JSON.stringify({ cmd: 'explode' }) + '\n')
  assert.ok(answer.endsWith('\n'))
  const parsed = JSON.parse(answer) as { ok: unknown; error: unknown }
  assert.equal(parsed.ok, false)
  assert.equal(typeof parsed.error, 'string')
  assert.match(String(parsed.error), /status, reload, ttin, ttou, stop/)
  assert.match(String(parsed.error), /"explode"/)
  assert.equal(calls, 0)
})

test('a line that is not JSON gets {ok:false} quoting what was received', async (t) => {
  const path = tempSocketPath(t)
  await listen(t, path, async () => null)
  const parsed = JSON.parse(await rawExchange(path, 'hello\n')) as { ok: unknown; error: unknown }
  assert.equal(parsed.ok, false)
  assert.match(String(parsed.error), /one of status, reload, ttin, ttou, stop, got "hello"/)
})

test('controlRequest to a missing socket rejects with FORKYARD_ERR_CONTROL', async (t) => {
  const path = tempSocketPath(t)
  await assert.rejects(controlRequest(path, 'status', 2000), (err: unknown) => {
    assert.equal((err as { code?: unknown }).code, 'FORKYARD_ERR_CONTROL')
    assert.match((err as Error).message, /Cannot reach the forkyard control socket/)
    assert.ok((err as Error).message.includes(path))
    assert.equal(((err as Error).cause as { code?: unknown } | undefined)?.code, 'ENOENT')
    return true
  })
})

test('the control socket file has mode 0600', async (t) => {
  const path = tempSocketPath(t)
  await listen(t, path, async () => null)
  const st = statSync(path)
  assert.ok(st.isSocket())
  assert.equal(st.mode & 0o777, 0o600)
})

test('listenControl replaces a stale file left at the socket path', async (t) => {
  const path = tempSocketPath(t)
  writeFileSync(path, 'left over by a crashed arbiter')
  await listen(t, path, async () => 'fresh')
  assert.ok(statSync(path).isSocket())
  assert.equal(await controlRequest(path, 'status'), 'fresh')
})

test(
  'more data after the first line does not run the command again',

  async (t) => {
    const path = tempSocketPath(t)
    const calls: ControlCommand[] = []
    let firstCall!: () => void
    const firstCalled = new Promise<void>((resolve) => (firstCall = resolve))
    let release!: () => void
    const released = new Promise<void>((resolve) => (release = resolve))
    const server = await listenControl(path, async (cmd) => {
      calls.push(cmd)
      firstCall()
      await released
      return 'ok'
    })
    // Our 'data' listener is added after listenControl's own, so it runs after it for each chunk.
    let secondChunk!: () => void
    const secondSeen = new Promise<void>((resolve) => (secondChunk = resolve))
    let chunks = 0
    server.on('connection', (s: Socket) => s.on('data', () => ++chunks === 2 && secondChunk()))
    const client = createConnection(path)
    client.on('data', () => {})
    // One hook, in order: let the handler finish, drop the client, then close the server (which
    // waits for its connections).
    t.after(async () => {
      release()
      client.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    })
    await once(client, 'connect')
    client.write(JSON.stringify({ cmd: 'stop' }) + '\n')
    await firstCalled
    client.write('\n')
    await secondSeen
    assert.deepEqual(calls, ['stop'])
  },
)
