/**
 * `make dashboard-screenshot`: docs/grafana-dashboard.png, a picture of grafana/forkyard-dashboard.json
 * showing real data, made without Grafana (not packaged for Debian, not on npm). Against the stack
 * `make up` started in the current directory, it starts its own Prometheus (Debian's) scraping
 * /metrics through nginx every 2 s, drives traffic for --seconds (HTTP, pipelines, WebSocket
 * clients, a worker killed -9, a reload), runs every panel's own queries through Prometheus'
 * query_range exactly as Grafana would send them ($instance = All, $__rate_interval = 4 scrape
 * intervals), fails if Prometheus refuses any, and draws the panels by their gridPos in headless
 * Chromium.
 *
 *   node --import tsx scripts/dashboard-screenshot.ts [--seconds 90] [--out docs/grafana-dashboard.png]
 *        [--width 1600] [--no-disrupt] [--dashboard grafana/forkyard-dashboard.json]
 */
import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { chromium } from 'playwright-core'
import { definedEnv } from '../server/config/env-file.js'
import { loadPushConfig } from '../server/config/messaging.js'
import { readProjectEnv, stackEnv, supervisordPid } from '../server/stack/launcher.js'
import { readDashboard, substitute } from './dashboard/panels.js'
import { CHROMIUM, ensureTools, queryRange, queryValue, startPrometheus, type Prometheus, type Series } from './dashboard/prometheus.js'
import { named, renderPage, type PanelData } from './dashboard/render.js'
import { driveTraffic } from './dashboard/traffic.js'

const home = resolve(fileURLToPath(new URL('..', import.meta.url)))
const SCRAPE_SECONDS = 2
const RATE_INTERVAL = `${4 * SCRAPE_SECONDS}s`
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const say = (s: string): void => void process.stderr.write(`dashboard-screenshot: ${s}\n`)

const { values } = parseArgs({
  options: {
    seconds: { type: 'string', default: '90' },
    out: { type: 'string', default: join(home, 'docs', 'grafana-dashboard.png') },
    width: { type: 'string', default: '1600' },
    dashboard: { type: 'string', default: join(home, 'grafana', 'forkyard-dashboard.json') },
    'no-disrupt': { type: 'boolean', default: false },
  },
})

function number(name: string, raw: string, min: number, max: number): number {
  const n = Number(raw)
  if (!Number.isInteger(n) || n < min || n > max) throw new Error(`Expected --${name} to be a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`)
  return n
}

interface Refused {
  panel: string
  refId: string
  expr: string
  error: string
}

/** Every target of every panel through query_range: the panels' data, the refused queries, the empty panels. */
async function queryPanels(prom: Prometheus, file: string, start: number, end: number): Promise<{ data: PanelData[]; refused: Refused[]; empty: string[]; queries: number }> {
  const dashboard = readDashboard(file)
  const data: PanelData[] = []
  const refused: Refused[] = []
  const empty: string[] = []
  let queries = 0
  for (const panel of dashboard.panels) {
    const results: Series[][] = []
    for (const target of panel.targets ?? []) {
      const expr = substitute(target.expr, { rateInterval: RATE_INTERVAL, vars: { instance: '.*', datasource: 'prometheus' } })
      queries++
      const r = await queryRange(prom.url, expr, start, end, SCRAPE_SECONDS)
      if (r.ok) results.push(r.series)
      else {
        refused.push({ panel: panel.title, refId: target.refId, expr, error: r.error })
        results.push([])
      }
    }
    const series = named(panel, results)
    if (panel.type !== 'row' && series.length === 0) empty.push(panel.title)
    data.push({ panel, series })
  }
  return { data, refused, empty, queries }
}

async function screenshot(html: string, out: string, width: number): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'forkyard-dashboard-'))
  const page = join(dir, 'dashboard.html')
  writeFileSync(page, html)
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run'],
  })
  try {
    const tab = await browser.newPage({ viewport: { width, height: 900 }, deviceScaleFactor: 1 })
    await tab.goto(`file://${page}`)
    mkdirSync(dirname(out), { recursive: true })
    await tab.screenshot({ path: out, fullPage: true })
  } finally {
    await browser.close()
    rmSync(dir, { recursive: true, force: true })
  }
}

async function main(): Promise<number> {
  const began = Date.now()
  const seconds = number('seconds', values.seconds, 10, 3600)
  const width = number('width', values.width, 800, 4000)
  const out = resolve(values.out)
  // The stack `make up` started here: its paths and nginx port from .env, through the kit's own loaders.
  const dir = process.cwd()
  const file = readProjectEnv(dir)
  const st = stackEnv(home, dir, process.env, file, { checkApp: false })
  if (supervisordPid(st.runDir) === null) throw new Error(`Expected the native stack running in ${dir} (no supervisord pid in ${st.runDir}): run make up there first`)
  const target = new URL(st.url).host
  const metrics = await fetch(`http://${target}/metrics`).catch((err: Error) => err)
  if (metrics instanceof Error || metrics.status !== 200) {
    throw new Error(`Expected GET http://${target}/metrics to answer 200, got ${metrics instanceof Error ? metrics.message : `${metrics.status} (FORKYARD_METRICS_ALLOW must allow 127.0.0.1)`}`)
  }
  const secret = loadPushConfig({ ...file, ...definedEnv(process.env) }).secret
  ensureTools(say)

  const prom = await startPrometheus(target, SCRAPE_SECONDS, target)
  const onSignal = (sig: NodeJS.Signals): void => {
    say(`${sig}: stopping prometheus (pid ${prom.pid})`)
    void prom.stop().finally(() => process.exit(128 + (sig === 'SIGINT' ? 2 : 15)))
  }
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  process.once('exit', prom.kill)
  try {
    say(`prometheus ${prom.version} (pid ${prom.pid}) on ${prom.url}, scraping http://${target}/metrics every ${SCRAPE_SECONDS} s`)
    for (let i = 0; (await queryValue(prom.url, 'up{job="forkyard"}')) !== 1; i++) {
      if (i >= 100) throw new Error(`prometheus did not scrape http://${target}/metrics successfully within 20 s (see ${prom.url}/targets)`)
      await sleep(200)
    }
    // Some quiet before and after the load, so the charts show it start and stop.
    await sleep(6000)
    const start = Math.floor(Date.now() / 1000) - 6
    const summary = await driveTraffic({ base: `http://${target}`, seconds, secret, controlSocket: values['no-disrupt'] ? null : join(st.runDir, 'arbiter.sock'), say })
    say(`traffic: ${summary.requests} requests ${JSON.stringify(summary.byStatus)}, ${summary.failures} failed, ${summary.pipelines} pipelines, ${summary.published} published, ${summary.received} WebSocket messages received, ${summary.resumes} resumes recovered`)
    await sleep(8000)
    const end = Math.floor(Date.now() / 1000)

    const { data, refused, empty, queries } = await queryPanels(prom, values.dashboard, start, end)
    if (refused.length > 0) {
      for (const r of refused) say(`REFUSED: panel "${r.panel}" ${r.refId}: ${r.expr}\n    ${r.error}`)
      say(`${refused.length} of ${queries} queries refused by prometheus ${prom.version}: no screenshot written`)
      return 1
    }
    say(`${queries} queries over ${end - start} s (step ${SCRAPE_SECONDS} s, $__rate_interval ${RATE_INTERVAL}): all accepted`)
    for (const title of empty) say(`no series: panel "${title}"`)
    const panels = data.filter((d) => d.panel.type !== 'row').length
    const html = renderPage({
      dashboard: readDashboard(values.dashboard),
      data,
      start,
      end,
      step: SCRAPE_SECONDS,
      width: width - 32,
      note: `Not Grafana: the dashboard's own ${queries} queries, run by Prometheus ${prom.version} (query_range, step ${SCRAPE_SECONDS}s, $__rate_interval=${RATE_INTERVAL}) against a forkyard stack under ${seconds} s of load, drawn by make dashboard-screenshot.`,
      variables: [['Prometheus', `prometheus ${prom.version}`], ['Instance', 'All']],
    })
    await screenshot(html, out, width)
    say(`wrote ${out} (${Math.round(statSync(out).size / 1024)} KiB): ${panels} panels, ${panels - empty.length} with data, in ${Math.round((Date.now() - began) / 1000)} s`)
    return 0
  } finally {
    await prom.stop()
    process.removeListener('exit', prom.kill)
    say(`prometheus (pid ${prom.pid}) stopped`)
  }
}

main().then(
  (code) => process.exit(code),
  (err: unknown) => {
    say((err as Error)?.message ?? String(err))
    process.exit(1)
  },
)
