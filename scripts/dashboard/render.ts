/**
 * One HTML page drawing a Grafana dashboard the way Grafana lays it out (dark theme, 24-column
 * grid, row headers, time series panels with their units and legends) from the series Prometheus
 * returned for each panel's queries. Static SVG, no script: what headless Chromium screenshots.
 */
import type { Series } from './prometheus.js'
import { type Dashboard, type Panel, clock, formatValue, gridHeight, legendName, niceTicks, place, tickDecimals, timeTicks } from './panels.js'

/** Grafana's classic palette, in its order. */
const PALETTE = ['#73BF69', '#F2CC0C', '#8AB8FF', '#FF780A', '#F2495C', '#5794F2', '#B877D9', '#705DA0', '#37872D', '#FADE2A']

export interface PanelData {
  panel: Panel
  /** Every series of every target, named for the legend. */
  series: { name: string; points: [number, number][] }[]
}

export interface Page {
  dashboard: Dashboard
  data: PanelData[]
  start: number
  end: number
  step: number
  width: number
  /** The line under the title, saying what this picture is. */
  note: string
  variables: [string, string][]
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`)
}

/** A panel's series named for its legend: legendFormat of its target, else labels. */
export function named(panel: Panel, results: Series[][]): PanelData['series'] {
  const out: PanelData['series'] = []
  ;(panel.targets ?? []).forEach((target, i) => {
    for (const s of results[i] ?? []) out.push({ name: legendName(target.legendFormat, s.labels), points: s.points })
  })
  return out
}

/** Segments of a line: a new one after a gap longer than 1.5 steps (Grafana's null gaps). */
export function segments(points: [number, number][], step: number): [number, number][][] {
  const out: [number, number][][] = []
  let cur: [number, number][] = []
  let last = -Infinity
  for (const p of points) {
    if (!Number.isFinite(p[1])) continue
    if (p[0] - last > step * 1.5 && cur.length > 0) {
      out.push(cur)
      cur = []
    }
    cur.push(p)
    last = p[0]
  }
  if (cur.length > 0) out.push(cur)
  return out
}

function chart(d: PanelData, page: Page, w: number, h: number): string {
  const unit = d.panel.fieldConfig?.defaults?.unit
  const lineWidth = d.panel.fieldConfig?.defaults?.custom?.lineWidth ?? 1
  const fill = (d.panel.fieldConfig?.defaults?.custom?.fillOpacity ?? 0) / 100
  const values = d.series.flatMap((s) => s.points.map((p) => p[1])).filter(Number.isFinite)
  if (values.length === 0) return `<div class="nodata" style="height:${h}px">No data</div>`
  let lo = Math.min(0, ...values)
  let hi = Math.max(...values)
  if (hi === lo) hi = lo + 1
  const yt = niceTicks(lo, hi, Math.max(2, Math.round(h / 40)), unit)
  lo = Math.min(lo, yt[0]!)
  hi = Math.max(hi, yt[yt.length - 1]!)
  // Enough decimals to tell the labels apart once scaled (1.5 K, not 2 K twice).
  let dec = tickDecimals(yt)
  let labels = yt.map((t) => formatValue(t, unit, dec))
  while (dec < 3 && new Set(labels).size < labels.length) labels = yt.map((t) => formatValue(t, unit, ++dec))
  const left = Math.max(...labels.map((l) => l.length)) * 6.4 + 10
  const bottom = 20
  const pw = w - left - 8
  const ph = h - bottom - 6
  const x = (t: number): number => left + ((t - page.start) / (page.end - page.start)) * pw
  const y = (v: number): number => 6 + ph - ((v - lo) / (hi - lo)) * ph
  const parts: string[] = []
  yt.forEach((t, i) => {
    parts.push(`<line x1="${left}" x2="${left + pw}" y1="${y(t).toFixed(1)}" y2="${y(t).toFixed(1)}" class="grid"/>`)
    parts.push(`<text x="${left - 6}" y="${(y(t) + 4).toFixed(1)}" text-anchor="end">${escapeHtml(labels[i]!)}</text>`)
  })
  for (const t of timeTicks(page.start, page.end, Math.max(3, Math.floor(pw / 90)))) {
    parts.push(`<line x1="${x(t).toFixed(1)}" x2="${x(t).toFixed(1)}" y1="6" y2="${6 + ph}" class="grid"/>`)
    // A label that would be cut by the panel's edge is left out (its grid line stays).
    if (x(t) + 24 > w) continue
    parts.push(`<text x="${x(t).toFixed(1)}" y="${h - 5}" text-anchor="middle">${clock(t)}</text>`)
  }
  d.series.forEach((s, i) => {
    const color = PALETTE[i % PALETTE.length]!
    for (const seg of segments(s.points, page.step)) {
      const pts = seg.map(([t, v]) => `${x(t).toFixed(1)},${y(v).toFixed(1)}`)
      if (seg.length === 1) {
        parts.push(`<circle cx="${x(seg[0]![0]).toFixed(1)}" cy="${y(seg[0]![1]).toFixed(1)}" r="1.5" fill="${color}"/>`)
        continue
      }
      if (fill > 0) {
        const base = y(Math.max(lo, 0)).toFixed(1)
        parts.push(`<polygon points="${x(seg[0]![0]).toFixed(1)},${base} ${pts.join(' ')} ${x(seg[seg.length - 1]![0]).toFixed(1)},${base}" fill="${color}" fill-opacity="${fill}"/>`)
      }
      parts.push(`<polyline points="${pts.join(' ')}" fill="none" stroke="${color}" stroke-width="${lineWidth}" stroke-linejoin="round"/>`)
    }
  })
  return `<svg width="${w}" height="${h}" viewBox="0 0 ${w} ${h}">${parts.join('')}</svg>`
}

function legend(d: PanelData): string {
  return d.series.map((s, i) => `<span class="item"><i style="background:${PALETTE[i % PALETTE.length]}"></i>${escapeHtml(s.name === '' ? '(no name)' : s.name)}</span>`).join('')
}

/** The legend's height: one 18 px line per ~ (width / 150) items. */
function legendLines(d: PanelData, w: number): number {
  if (d.series.length === 0) return 0
  const chars = d.series.reduce((n, s) => n + s.name.length + 4, 0)
  return Math.min(3, Math.max(1, Math.ceil((chars * 6.6) / (w - 16))))
}

function panelHtml(d: PanelData, page: Page): string {
  const b = place(d.panel.gridPos, page.width)
  const style = `left:${b.left}px;top:${b.top}px;width:${b.width}px;height:${b.height}px`
  if (d.panel.type === 'row') return `<div class="row" style="${style}"><span class="chev">&#8964;</span>${escapeHtml(d.panel.title)}</div>`
  const lines = legendLines(d, b.width)
  const chartH = b.height - 32 - lines * 18 - 8
  return `<div class="panel" style="${style}"><div class="title">${escapeHtml(d.panel.title)}</div>` +
    `<div class="chart">${chart(d, page, b.width - 16, chartH)}</div>` +
    `<div class="legend" style="height:${lines * 18}px">${legend(d)}</div></div>`
}

export function renderPage(page: Page): string {
  const height = gridHeight(page.dashboard.panels, page.width)
  const vars = page.variables.map(([k, v]) => `<span class="var"><b>${escapeHtml(k)}</b>${escapeHtml(v)}</span>`).join('')
  const range = `${new Date(page.start * 1000).toISOString().slice(0, 10)} ${clock(page.start)} to ${clock(page.end)}`
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escapeHtml(page.dashboard.title)}</title><style>
  * { box-sizing: border-box; }
  body { margin: 0; background: #111217; color: #ccccdc; font: 12px Inter, "Helvetica Neue", Arial, "DejaVu Sans", sans-serif; }
  header { padding: 10px 16px 6px; display: flex; align-items: baseline; gap: 16px; border-bottom: 1px solid #202226; background: #181b1f; }
  header h1 { margin: 0; font-size: 17px; font-weight: 500; color: #d8d9da; }
  header .crumb { color: #8e8e8e; font-size: 15px; }
  header .range { margin-left: auto; border: 1px solid #34373c; padding: 4px 9px; border-radius: 2px; color: #d8d9da; }
  .note { padding: 6px 16px 0; color: #8e8e98; font-size: 12px; }
  .vars { padding: 8px 16px 4px; display: flex; gap: 8px; }
  .var { border: 1px solid #34373c; border-radius: 2px; overflow: hidden; display: inline-flex; }
  .var b { background: #22252b; padding: 4px 8px; font-weight: 500; color: #6e9fff; border-right: 1px solid #34373c; }
  .var { padding-right: 8px; align-items: center; gap: 8px; }
  .grid-area { position: relative; margin: 8px 16px 16px; height: ${height}px; }
  .panel { position: absolute; background: #181b1f; border: 1px solid #2c2f35; border-radius: 2px; padding: 0 8px; overflow: hidden; }
  .panel .title { height: 32px; line-height: 32px; font-size: 13px; font-weight: 500; color: #d8d9da; white-space: nowrap; overflow: hidden; text-overflow: ellipsis; }
  .row { position: absolute; font-size: 15px; font-weight: 500; color: #d8d9da; line-height: 30px; }
  .row .chev { display: inline-block; width: 18px; color: #8e8e8e; position: relative; top: -3px; }
  svg text { fill: #a0a0ab; font-size: 10.5px; }
  svg .grid { stroke: #ffffff; stroke-opacity: 0.08; stroke-width: 1; }
  .nodata { display: flex; align-items: center; justify-content: center; color: #8e8e98; font-size: 14px; }
  .legend { display: flex; flex-wrap: wrap; gap: 0 14px; overflow: hidden; line-height: 18px; color: #c7d0d9; }
  .legend .item { white-space: nowrap; }
  .legend i { display: inline-block; width: 14px; height: 4px; border-radius: 2px; margin-right: 6px; vertical-align: middle; }
</style></head><body>
<header><span class="crumb">Dashboards /</span><h1>${escapeHtml(page.dashboard.title)}</h1><span class="range">${range}</span></header>
<div class="note">${escapeHtml(page.note)}</div>
<div class="vars">${vars}</div>
<div class="grid-area">${page.data.map((d) => panelHtml(d, page)).join('\n')}</div>
</body></html>`
}
