// Single-process baseline for bench/http.ts: one node:http server on 127.0.0.1:$PORT.
// Prints "ready <pid>" once listening; SIGTERM's default action stops it.
import { createServer } from 'node:http'
import process from 'node:process'
import hello from './hello.mjs'

createServer(hello).listen(Number(process.env.PORT), '127.0.0.1', () => {
  process.stdout.write(`ready ${process.pid}\n`)
})
