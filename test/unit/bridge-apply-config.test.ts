import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import pino from 'pino'
import { Bridge } from '../../server/bridge/bridge.js'
import { loadEngineConfig } from '../../server/config/engine.js'
import { loadBridgeConfig } from '../../server/config/messaging.js'

test('a change of FORKYARD_ENGINE or its prefix needs a new bridge process; history limits apply live', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'fy-bridge-cfg-'))
  t.after(() => rmSync(dir, { recursive: true, force: true }))
  const env = { FORKYARD_BRIDGE_DIR: join(dir, 'sock'), FORKYARD_BRIDGE_DATA_DIR: 'none' }
  const config = loadBridgeConfig(env)
  const engine = loadEngineConfig(env)
  const bridge = new Bridge(config, pino({ level: 'silent' }), engine)
  await bridge.start()
  t.after(() => bridge.close())
  assert.equal(bridge.applyConfig(loadBridgeConfig(env), loadEngineConfig({ ...env, FORKYARD_ENGINE: 'redis://127.0.0.1:1/0' })), 'restart')
  assert.equal(bridge.applyConfig(loadBridgeConfig(env), loadEngineConfig({ ...env, FORKYARD_ENGINE_PREFIX: 'other:' })), 'restart')
  assert.equal(bridge.applyConfig(loadBridgeConfig({ ...env, FORKYARD_BRIDGE_HISTORY_COUNT: '5' }), loadEngineConfig(env)), 'live')
})
