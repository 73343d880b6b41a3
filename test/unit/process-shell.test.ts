/**
 * The process shell (server/process/shell.ts) in a real child process: signals are queued and run
 * from one loop, an ignored signal neither kills nor logs, fatal errors are logged then end the
 * process with exit code 1, and exit() flushes the log lines before the process goes.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { root } from '../helpers/server.js'

const shellUrl = pathToFileURL(join(root, 'server/process/shell.ts')).href

interface Run {
  lines: Record<string, unknown>[]
  waitFor: (msg: string) => Promise<void>
  exited: Promise<number | null>
  kill: (sig: NodeJS.Signals) => void
}

function run(t: { after: (fn: () => void) => void }, body: string): Run {
  const script = `import { ProcessShell } from ${JSON.stringify(shellUrl)}\nconst shell = new ProcessShell({ svc: 'test' })\nconst { log } = shell\n${body}\n`
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] })
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL')
  })
  const lines: Record<string, unknown>[] = []
  const waiters: { msg: string; resolve: () => void }[] = []
  let pending = ''
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()))
  child.stdout.on('data', (d: Buffer) => {
    pending += d.toString()
    for (let nl = pending.indexOf('\n'); nl !== -1; nl = pending.indexOf('\n')) {
      const line = JSON.parse(pending.slice(0, nl)) as Record<string, unknown>
      pending = pending.slice(nl + 1)
      lines.push(line)
      for (const w of waiters.filter((w) => w.msg === line.msg)) w.resolve()
    }
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)))
  return {
    lines,
    exited: exited.then((code) => {
      if (code === null) process.stderr.write(stderr)
      return code
    }),
    kill: (sig) => void child.kill(sig),
    waitFor: (msg) =>
      lines.some((l) => l.msg === msg)
        ? Promise.resolve()
        : new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no "${msg}" line; got ${JSON.stringify(lines)}; stderr ${stderr}`)), 10_000)
            waiters.push({ msg, resolve: () => (clearTimeout(timer), resolve()) })
          }),
  }
}

test('signals run their handler from the loop, in order; an ignored signal neither kills nor logs', async (t) => {
  const p = run(
    t,
    `shell.handleSignals({
      SIGHUP: () => log.info('hup handled'),
      SIGTERM: () => { log.info('term handled'); shell.exit(0) },
      SIGINT: null,
    })
    setInterval(() => {}, 1000)
    log.info('ready')`,
  )
  await p.waitFor('ready')
  p.kill('SIGINT')
  p.kill('SIGHUP')
  await p.waitFor('hup handled')
  p.kill('SIGTERM')
  assert.equal(await p.exited, 0)
  const msgs = p.lines.map((l) => (l.msg === 'signal received' ? `signal ${String(l.signal)}` : l.msg))
  assert.deepEqual(msgs, ['ready', 'signal SIGHUP', 'hup handled', 'signal SIGTERM', 'term handled'])
})

test('an uncaught exception is logged as fatal, then the process exits 1', async (t) => {
  const p = run(t, `setTimeout(() => { throw new Error('boom') }, 10)`)
  assert.equal(await p.exited, 1)
  const fatal = p.lines.find((l) => l.level === 'fatal')
  assert.equal(fatal?.origin, 'uncaughtException')
  assert.equal((fatal?.err as { message?: string } | undefined)?.message, 'boom')
})

test('an unhandled rejection goes the same way, through the handler the process chose', async (t) => {
  const p = run(t, `shell.onFatalError('custom fatal', () => { log.info('stopping first'); setTimeout(() => shell.exit(1), 20) })\nvoid Promise.reject(new Error('nope'))`)
  assert.equal(await p.exited, 1)
  assert.deepEqual(
    p.lines.map((l) => [l.level, l.msg, l.origin]),
    [
      ['fatal', 'custom fatal', 'unhandledRejection'],
      ['info', 'stopping first', undefined],
    ],
  )
})

test('the first exit decides the code', async (t) => {
  const p = run(t, `shell.exit(3)\nshell.exit(0)`)
  assert.equal(await p.exited, 3)
})
