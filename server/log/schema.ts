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
