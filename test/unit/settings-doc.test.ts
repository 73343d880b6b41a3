/**
 * One source per fact about a setting: the schemas in server/config/ (name, default, live or
 * restart), .env.example (meaning, and a line for every setting), README's table generated from
 * both (scripts/settings-table.ts). Any drift fails here.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { exampleEntries, root, schemaFields, settingsTable, withTable } from '../../scripts/settings-table.js'
import { restartKeys } from '../../server/config/env-file.js'

const example = readFileSync(join(root, '.env.example'), 'utf8')

test("README's settings table is the one generated from .env.example and the schemas (make settings-table)", () => {
  const readme = readFileSync(join(root, 'README.md'), 'utf8')
  assert.equal(withTable(readme, settingsTable(example)), readme)
})

test('.env.example has a line, with a meaning, for every variable of every schema, and nothing else', () => {
  const fields = schemaFields()
  const entries = exampleEntries(example)
  const names = entries.map((e) => e.name)
  assert.deepEqual([...fields.keys()].filter((k) => !names.includes(k)), [], 'schema variables missing from .env.example')
  assert.deepEqual(names.filter((n) => !fields.has(n)), [], '.env.example variables no schema reads')
  assert.equal(new Set(names).size, names.length, 'a variable twice in .env.example')
  assert.deepEqual(entries.filter((e) => e.meaning === '').map((e) => e.name), [], 'variables without a comment')
})

test('every value in .env.example parses to the schema default, in every schema that reads it', () => {
  for (const e of exampleEntries(example)) {
    for (const f of schemaFields().get(e.name) ?? []) {
      assert.deepEqual(f.parse(f.env, e.value === '' && f.default !== '' ? f.default : e.value), f.parse(f.env, f.default), `${e.name}=${e.value} vs default ${JSON.stringify(f.default)}`)
    }
  }
})

test('a variable read by several schemas has one default and one way to apply', () => {
  for (const [name, fields] of schemaFields()) {
    assert.equal(new Set(fields.map((f) => f.default)).size, 1, `${name}: defaults differ`)
    assert.equal(new Set(fields.map((f) => f.apply ?? 'live')).size, 1, `${name}: live in one schema, restart in another`)
  }
})

test('the rolling reload covers exactly the restart variables the server and its publishers read', () => {
  for (const k of ['FORKYARD_BIND', 'FORKYARD_WORKERS', 'FORKYARD_APP', 'FORKYARD_APP_SCHEMA', 'FORKYARD_PUBLISH_QUEUE', 'FORKYARD_OFFLOAD_THREADS']) assert.ok(restartKeys.includes(k), k)
  for (const k of ['FORKYARD_TIMEOUT', 'FORKYARD_REQUEST_TIMEOUT', 'FORKYARD_LOG_LEVEL', 'FORKYARD_PUSH_MAX_SUBSCRIPTIONS']) assert.ok(!restartKeys.includes(k), k)
})

test("the Dockerfile's header lists every variable of .env.example (with its default or what the image fixes)", () => {
  const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8')
  const header = dockerfile.slice(0, dockerfile.indexOf('\nFROM '))
  const names = exampleEntries(example).map((e) => e.name)
  assert.ok(names.length > 0)
  assert.deepEqual(names.filter((n) => !new RegExp(`^#\\s+${n}=`, 'm').test(header)), [], 'variables missing from the Dockerfile header')
})
