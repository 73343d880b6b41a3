/**
 * State that must be one per process even when a process loads two copies of forkyard: the kit's
 * own (which runs the workers and the jobs process) and the app's (`npm install forkyard` in the
 * app's directory, imported by the app). Module-level variables would give each copy its own task
 * registry, and the jobs process would never see the app's `tasks.define()`. undici keeps its
 * global dispatcher the same way, under a `Symbol.for` key in globalThis.
 * The version in the key changes when the shape of a value changes.
 */
export function processGlobal<T>(name: string, create: () => T): T {
  const key = Symbol.for(`forkyard.${name}.v1`)
  const store = globalThis as unknown as Record<symbol, T | undefined>
  return (store[key] ??= create())
}
