import { test } from 'node:test'
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { schema } from '../../server/config/schema.js'

const examplePath = fileURLToPath(new URL('../../.env.example', import.meta.url))
const text = readFileSync(examplePath, 'utf8')

/** NAME=value lines of .env.example (comments and blank lines skipped). */
function exampleValues(): Map<string, string> {
  const out = new Map<string, string>()
  for (const line of text.split('\n')) {
    const m = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line)
    if (m === null) continue
    const [, name, value] = m
    if (name === undefined || value === undefined) continue
    assert.ok(!out.has(name), `${name} appears twice in .env.example`)
    out.set(name, value.trim())
  }
  return out
}

const fields = Object.values(schema) as { env: string; parse: (name: string, raw: string) => unknown; default: string }[]

test('.env.example documents every schema variable as NAME= at the start of a line', () => {
  const missing = fields.filter((f) => !new RegExp(`^${f.env}=`, 'm').test(text)).map((f) => f.env)
  assert.deepEqual(missing, [])
})

test('every value in .env.example equals the schema default once parsed', () => {
  const values = exampleValues()
  assert.ok(values.size > 0)
  for (const field of fields) {
    const raw = values.get(field.env)
    assert.ok(raw !== undefined, `${field.env} missing`)
    assert.deepEqual(field.parse(field.env, raw), field.parse(field.env, field.default), `${field.env}=${raw} vs default ${JSON.stringify(field.default)}`)
  }
})

test('the FORKYARD_TIMEOUT example reads 30s and the schema default is 30s', () => {
  assert.equal(exampleValues().get('FORKYARD_TIMEOUT'), '30s')
  assert.equal(schema.timeoutMs.default, '30s')
})
