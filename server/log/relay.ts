/**
 * Relays a child's stdout/stderr into this process's single log output, whole lines only.
 * Each child writes to its own pipe, and only this process writes the shared output, so lines
 * from concurrent children never interleave or split, however long they are (a pipe write is
 * only atomic up to PIPE_BUF = 4096 bytes, pipe(7)).
 */
import type { Readable } from 'node:stream'
import type { SonicBoom } from 'sonic-boom'

export interface RelayOptions {
  /** Lines that are not JSON (a crash trace on stderr) are wrapped into the log schema. */
  wrap: (line: string) => string
}

export function relayLines(stream: Readable, output: SonicBoom, options: RelayOptions): void {
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

function writeLines(text: string, output: SonicBoom, options: RelayOptions): void {
  // Fast path: JSON lines (pino output) pass through untouched, in one write.
  if (isAllJson(text)) {
    output.write(text)
    return
  }
  let out = ''
  for (const line of text.split('\n')) {
    if (line === '') continue
    out += (line.startsWith('{') && line.endsWith('}') ? line : options.wrap(line)) + '\n'
  }
  if (out !== '') output.write(out)
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
