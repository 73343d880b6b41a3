/**
 * Development mode (`forkyard serve --reload`): a change to a source file under the app's
 * directory triggers the normal rolling reload, so the next request runs the new code. Changes in
 * node_modules, .git, logs, run and data are ignored; bursts (an editor saving several files) are
 * merged into one reload.
 */
import { watch, type FSWatcher } from 'node:fs'
import type { Logger } from 'pino'

const IGNORED = /(^|\/)(node_modules|\.git|logs|run|data|dist\/\.cache)(\/|$)|\.(log|tmp|swp)$|~$/

export function watchSources(dir: string, log: Logger, reload: () => Promise<boolean>): FSWatcher {
  let timer: NodeJS.Timeout | null = null
  let changed = new Set<string>()
  const watcher = watch(dir, { recursive: true, persistent: false }, (_event, file) => {
    if (file === null || IGNORED.test(file)) return
    changed.add(file)
    if (timer !== null) clearTimeout(timer)
    timer = setTimeout(() => {
      timer = null
      const files = [...changed]
      changed = new Set()
      log.info({ files }, 'source changed: reloading workers')
      void reload()
    }, 150)
  })
  watcher.on('error', (err) => log.warn({ err }, 'source watcher failed: edit-and-reload is off'))
  return watcher
}
