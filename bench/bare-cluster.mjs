// Bare node:cluster anchor for bench/http.ts: a primary forks $WORKERS workers, each serving
// hello.mjs on the Unix socket $SOCKET (behind nginx) or on 127.0.0.1:$PORT, with the scheduling
// NODE_CLUSTER_SCHED_POLICY says (the bench sets "none", as forkyard's default).
// Prints "ready <worker pids>" once every worker listens. SIGTERM stops the workers, then exits.
import cluster from 'node:cluster'
import { createServer } from 'node:http'
import process from 'node:process'
import { setTimeout } from 'node:timers'
import hello from './hello.mjs'

const port = Number(process.env.PORT)
const workers = Number(process.env.WORKERS ?? 2)

if (cluster.isPrimary) {
  const pids = []
  for (let i = 0; i < workers; i++) cluster.fork()
  cluster.on('listening', (worker) => {
    pids.push(worker.process.pid)
    if (pids.length === workers) process.stdout.write(`ready ${pids.join(' ')}\n`)
  })
  process.on('SIGTERM', () => {
    const left = () => Object.keys(cluster.workers ?? {}).length
    cluster.on('exit', () => left() === 0 && process.exit(0))
    for (const worker of Object.values(cluster.workers ?? {})) worker?.kill()
    if (left() === 0) process.exit(0)
    setTimeout(() => process.exit(1), 5000).unref()
  })
} else {
  const server = createServer(hello)
  // Longer than nginx's upstream keepalive_timeout, as behind any proxy (forkyard does the same).
  server.keepAliveTimeout = 75_000
  if (process.env.SOCKET) server.listen({ path: process.env.SOCKET, backlog: 2048 })
  else server.listen({ port, host: '127.0.0.1', backlog: 2048 })
}
