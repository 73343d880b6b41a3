/**
 * Relays a child's stdout/stderr into this process's single log output, whole lines only.
 * Each child writes to its own pipe, and only this process writes the shared output, so lines
 * from concurrent children never interleave or split, however long they are (a pipe write is
 * only atomic up to PIPE_BUF = 4096 bytes, pipe(7)).
 */
import type { Readable } from 'node:stream'
import type { LineOutput } from './rotating-file.js'

export interface RelayOptions {
  /** Lines that are not JSON (a crash trace on stderr) are wrapped into the log schema. */
  wrap: (line: string) => string
  /**
   * The stream carries only JSON lines made by a logger (pino, nginx's escape=json format): they
   * pass through without being parsed. Otherwise every line is checked, so that a console.log of
   * an object ("{ a: 1 }") is wrapped rather than passed on as broken JSON.
   */
  trusted?: boolean
}

export function relayLines(stream: Readable, output: LineOutput, options: RelayOptions): void {
  let pending = ''
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    const last = chunk.lastIndexOf('\n')
    if (last === -1) {
      pending += chunk
      return
    }
    const complete = pending + chunk.slice(0, last + 1)
    pending = chunk.slice(last + 1)
    writeLines(complete, output, options)
  })
  stream.on('end', () => {
    if (pending !== '') writeLines(pending + '\n', output, options)
    pending = ''
  })
}

function writeLines(text: string, output: LineOutput, options: RelayOptions): void {
  // Fast path: a trusted stream's JSON lines pass through untouched, in one write.
  if (options.trusted === true && isAllJson(text)) {
    output.write(text)
    return
  }
  let out = ''
  for (const line of text.split('\n')) {
    if (line === '') continue
    out += (isJson(line) ? line : options.wrap(line)) + '\n'
  }
  if (out !== '') output.write(out)
}

function isJson(line: string): boolean {
  if (!line.startsWith('{') || !line.endsWith('}')) return false
  try {
    JSON.parse(line)
    return true
  } catch {
    return false
  }
}

function isAllJson(text: string): boolean {
  if (text[0] !== '{') return false
  let i = text.indexOf('\n')
  while (i !== -1 && i < text.length - 1) {
    if (text[i - 1] !== '}' || text[i + 1] !== '{') return false
    i = text.indexOf('\n', i + 1)
  }
  return text[text.length - 2] === '}'
}
