/**
 * Generic reading of one group of FORKYARD_* settings: each field names its variable, parser and
 * default; overrides given in code go through the same parser (numbers in the field's unit).
 */
import { duration, type Parser } from './parse.js'

export interface Field<T> {
  env: string
  parse: Parser<T>
  default: string
  /**
   * How a running process takes a change: absent = live (applied within a second); 'restart' = only
   * a new process can take it, and the process using it is replaced without losing anything (the
   * workers and the jobs process by the rolling reload, push and bridge by exiting so that
   * supervisord starts them again); 'up' = read by `forkyard up` on the host, at the next start.
   * README's settings table shows it.
   */
  apply?: 'restart' | 'up'
}

export type Schema<C> = { [K in keyof C]: Field<C[K]> }

export type Overrides<C> = { [K in keyof C]?: C[K] | string | number | boolean }

/** The variables of `schema` that only a new process can take. */
export function restartVariables(schema: Schema<unknown> | Record<string, Field<unknown>>): string[] {
  return (Object.values(schema) as Field<unknown>[]).filter((f) => f.apply === 'restart').map((f) => f.env)
}

export function readSection<C>(schema: Schema<C>, env: NodeJS.ProcessEnv, overrides: Overrides<C> = {}): C {
  const out: Record<string, unknown> = {}
  for (const key of Object.keys(schema) as (keyof C & string)[]) {
    const field = schema[key] as Field<unknown>
    const override: unknown = overrides[key]
    if (override === undefined || typeof override === 'string') {
      const raw = (override as string | undefined) ?? env[field.env] ?? field.default
      out[key] = field.parse(field.env, raw === '' && field.default !== '' ? field.default : raw)
    } else if (typeof override === 'number') {
      out[key] = field.parse(field.env, field.parse === duration ? `${override}ms` : String(override))
    } else if (typeof override === 'boolean') {
      out[key] = field.parse(field.env, String(override))
    } else {
      out[key] = override
    }
  }
  return out as C
}
