/** Development: JSON lines turned into readable colored lines on a terminal (never in production). */
import { pretty, parseLine } from '../stack/logs.js'
import type { LineOutput } from './rotating-file.js'

export class PrettyOutput implements LineOutput {
  write(lines: string): boolean {
    let out = ''
    for (const text of lines.split('\n')) {
      const line = parseLine(text, 'server', true)
      if (line !== null) out += pretty(line, true) + '\n'
    }
    process.stdout.write(out)
    return true
  }

  flushSync(): void {}
}
