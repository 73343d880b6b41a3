// The app side of bench/push.ts for forkyard: a separate process, like a prefork worker, that
// publishes COUNT messages {t, s, i} on CHANNEL through the bridge at RATE per second (0 = as fast
// as acknowledgements allow, at most WINDOW in flight). t is the wall clock (ms, fractional) just
// before publish() is called, s when the message was due (no s at unlimited rate). Prints one JSON
// line with the outcome and its CPU time (while publishing, and in all), then exits.
// Needs FORKYARD_RUN_DIR (to find the bridge socket) like any publishing process.
import { publish, publisherStats } from '../dist/index.js'
import { paced, wallMs } from './push-pace.mjs'

const channel = process.env.CHANNEL ?? 'bench'
const count = Number(process.env.COUNT ?? 100)
const rate = Number(process.env.RATE ?? 0)
const window = Number(process.env.WINDOW ?? 1000)

// One acknowledged publish on another channel first: the publisher's connection to the bridge is
// set up here, not on the first measured message (a worker publishing for real is long connected).
await publish(`${channel}.warmup`, { warmup: true })

const cpuBefore = process.cpuUsage()
const { failed, sendMs } = await paced({
  count,
  rate,
  window,
  send: (i, due) => publish(channel, due === null ? { t: wallMs(), i } : { t: wallMs(), s: due, i }),
})
const cpu = process.cpuUsage(cpuBefore)
const total = process.cpuUsage()
const ms = (c) => (c.user + c.system) / 1000
process.stdout.write(JSON.stringify({ msg: 'done', count, failed, sendMs, cpuMs: ms(cpu), cpuTotalMs: ms(total), stats: publisherStats() }) + '\n')
// The publisher's ZeroMQ socket would keep the process alive.
process.exit(0)
