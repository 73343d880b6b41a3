/**
 * The log line schema shared by every forkyard process, one JSON object per line:
 *   {"time":"2026-11-24T01:02:03.456Z","level":"info","svc":"server","pid":123,"role":"worker",
 *    "worker":2,"reqId":"...","msg":"..."}
 * Most lines are written by pino (logger.ts). Lines that do not come from a logger (a child's
 * stdout, a crash trace on stderr, nginx's error output, a `.stdio` file read back) are built by
 * plainLine() here, so that every reader (`make logs`, the development pretty output, a log
 * shipper) sees one shape. nginx's access lines follow the same schema through the `log_format`
 * in nginx/nginx.conf.template, which cannot import this module.
 */

export type Level = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal'

/**
 * A log line as read back: `time` (ISO 8601, UTC), `level`, `svc` (the program: server, push,
 * bridge, jobs, nginx), `pid`, `msg`, and where they apply `role` (arbiter, worker, jobs), `worker`
 * and `reqId`; any other field is the event's own.
 */
export type LogLine = Record<string, unknown> & { time?: string; level?: string; svc?: string; pid?: number; msg?: string; reqId?: string }

/**
 * A line in the schema for text that did not come from a logger. Fields are in the order pino
 * writes them (time, level, svc, pid, the extra fields, msg last); `pid` is left out when unknown
 * (a `.stdio` file read back).
 */
export function plainLine(svc: string, pid: number | undefined, level: Level, msg: string, extra: Record<string, unknown> = {}, time = new Date().toISOString()): LogLine {
  return { time, level, svc, ...(pid === undefined ? {} : { pid }), ...extra, msg }
}

/**
 * Reads one line of a log file back. `raw`: the line comes from a `.stdio` file (what a program
 * printed outside its logger), where only lines starting with "{" are tried as JSON. A line that is
 * not JSON is wrapped as an error of `svc`, at `rawTime`: the file's mtime when read back, now
 * when followed.
 */
export function parseLine(text: string, svc: string, raw: boolean, rawTime = new Date().toISOString()): LogLine | null {
  if (text === '') return null
  if (!raw || text.startsWith('{')) {
    try {
      return JSON.parse(text) as LogLine
    } catch {
      // not JSON: fall through and wrap
    }
  }
  return plainLine(svc, undefined, 'error', text, { stdio: true }, rawTime)
}

let lastMs = -1
let lastIso = ''

/** new Date(ms).toISOString(), made once per millisecond: a busy process logs several lines in one. */
export function isoTime(ms = Date.now()): string {
  if (ms !== lastMs) {
    lastMs = ms
    lastIso = new Date(ms).toISOString()
  }
  return lastIso
}

/** What a worker's access line holds beyond the logger's own fields. */
export interface AccessFields {
  reqId: string
  method: string
  path: string
  status: number
  ms: number
  aborted: boolean
}

/**
 * A worker's access line, the same line pino would write for `log.info(fields, 'request')`, built
 * directly: a worker writes one per request, and pino's generic path (level check, key loop,
 * serialisers) took 5.2 µs a line against 2.0 µs here (both with the cached time; a loop of 500k
 * lines on the 2-core VM). `bindings` is the logger's own fields, serialised once:
 * `"svc":"server","pid":1,"role":"worker",...` (serialiseBindings).
 */
export function accessLine(bindings: string, f: Readonly<AccessFields>): string {
  const aborted = f.aborted ? ',"aborted":true' : ''
  return `{"level":"info","time":"${isoTime()}",${bindings},"reqId":${JSON.stringify(f.reqId)},"method":${JSON.stringify(f.method)},"path":${JSON.stringify(f.path)},"status":${f.status},"ms":${f.ms}${aborted},"msg":"request"}\n`
}

/** A logger's bindings (pino's `log.bindings()`) as the inside of a JSON object, for accessLine. */
export function serialiseBindings(bindings: Record<string, unknown>): string {
  return JSON.stringify(bindings).slice(1, -1)
}
