/**
 * Two copies of the package in one process (the kit's, and the app's own from `npm install`) share
 * one task registry, singleton registry, runtime config and publisher: a second copy of a module is
 * loaded here as a distinct module instance (a different URL), as a second install would be.
 */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pathToFileURL } from 'node:url'
import { join } from 'node:path'
import { root } from '../helpers/server.js'
import * as kitRegistry from '../../server/jobs/registry.js'
import { config as kitConfig } from '../../server/config/runtime.js'

function secondCopy(path: string): string {
  return `${pathToFileURL(join(root, path)).href}?copy=app`
}

test('tasks and singletons declared through a second copy of the package are in the kit copy registry', async () => {
  const appRegistry = (await import(secondCopy('server/jobs/registry.ts'))) as typeof kitRegistry
  assert.notEqual(appRegistry.defineTask, kitRegistry.defineTask, 'a distinct module instance')
  appRegistry.defineTask('copy-test-task', () => 'ran')
  appRegistry.singleton('copy-test-singleton', () => undefined)
  assert.equal(kitRegistry.taskDefinitions.get('copy-test-task')?.name, 'copy-test-task')
  assert.ok(kitRegistry.singletonDefinitions.has('copy-test-singleton'))
  assert.throws(() => kitRegistry.singleton('copy-test-singleton', () => undefined), /declared twice/)
})

test('config.get() in a second copy follows what the kit applies', async () => {
  const app = (await import(secondCopy('server/config/runtime.ts'))) as { config: typeof kitConfig }
  let seen = ''
  app.config.onChange((e) => (seen = e.version))
  kitConfig.apply('v-first', {}, { GREETING: 'hello' }, [])
  kitConfig.apply('v-copy', {}, { GREETING: 'bonjour' }, ['GREETING'])
  assert.equal(app.config.get('GREETING'), 'bonjour')
  assert.equal(seen, 'v-copy')
})
