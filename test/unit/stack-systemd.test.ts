import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { test, type TestContext } from 'node:test'
import { systemdUnit, unitName } from '../../server/stack/systemd.js'
import { stackPaths, type StackPaths } from '../../server/stack/launcher.js'

const root = resolve(import.meta.dirname, '../..')
const hasAnalyze = spawnSync('sh', ['-c', 'command -v systemd-analyze'], { encoding: 'utf8' }).stdout.trim() !== ''

function verify(t: TestContext, name: string, unit: string): { status: number | null; out: string } {
  const dir = mkdtempSync(join(tmpdir(), 'fy-unit-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const path = join(dir, name)
  writeFileSync(path, unit)
  const r = spawnSync('systemd-analyze', ['verify', path], { encoding: 'utf8', timeout: 30_000 })
  return { status: r.status, out: `${r.stdout}${r.stderr}` }
}

const paths = (dir: string): StackPaths => ({ home: root, dir, env: {}, runDir: join(dir, 'run'), logDir: join(dir, 'logs'), graceMs: 40_000 })
const who = { user: 'root', group: 'root', path: '/usr/bin:/bin', node: process.execPath }

test('the unit: after the network, forking on supervisord\'s pidfile, restarted on failure, a stop timeout past the drain', () => {
  const unit = systemdUnit(paths('/srv/shop 100%'), who)
  assert.match(unit, /^After=network-online\.target$/m)
  assert.match(unit, /^Wants=network-online\.target$/m)
  assert.match(unit, /^Type=forking$/m)
  assert.match(unit, /^PIDFile=\/srv\/shop 100%%\/run\/supervisord\.pid$/m)
  assert.match(unit, /^Restart=on-failure$/m)
  assert.match(unit, /^TimeoutStopSec=100$/m, 'FORKYARD_GRACEFUL_TIMEOUT + 10 s, plus a minute for supervisord')
  assert.match(unit, /^ExecStart=".*node" ".*\/dist\/bin\/forkyard\.js" up$/m)
  assert.match(unit, /^ExecStop=.* down$/m)
  assert.match(unit, /^WorkingDirectory=\/srv\/shop 100%%$/m)
  assert.match(unit, /^Environment=FORKYARD_DOCKER=0$/m)
  assert.equal(unitName('/srv/my shop!'), 'forkyard-my-shop.service')
  assert.equal(unitName('/'), 'forkyard-app.service')
})

test('systemd-analyze verify accepts the unit for a project directory, and refuses a broken one', (t) => {
  if (!hasAnalyze) return t.skip('systemd-analyze is not installed (Debian: systemd)')
  const project = mkdtempSync(join(tmpdir(), 'fy-project-'))
  t.after(() => rmSync(project, { recursive: true, force: true }))
  // The CLI (forkyard startup --print) is checked in test/integration/stack-control.test.ts: a
  // child node process here breaks the unit run's coverage report (node 20).
  const unit = systemdUnit(stackPaths(root, project, { PATH: process.env.PATH ?? '' }, {}), { ...who, user: 'root', group: 'root' })
  assert.match(unit, new RegExp(`^WorkingDirectory=${project}$`, 'm'))
  const ok = verify(t, unitName(project), unit)
  assert.equal(ok.status, 0, ok.out)
  // The check can fail: a quoted WorkingDirectory (an earlier draft of this unit) is refused.
  const broken = verify(t, 'forkyard-broken.service', unit.replace(/^WorkingDirectory=(.*)$/m, 'WorkingDirectory="$1"'))
  assert.notEqual(broken.status, 0, broken.out)
  assert.match(broken.out, /WorkingDirectory= path is not absolute/)
})
