/**
 * The pure part of `make dashboard-screenshot`: what a Grafana dashboard JSON says (panels, their
 * grid positions, queries, legends, units), turned into what Prometheus is asked and where each
 * panel is drawn. Grafana's own rules where they matter: a 24-column grid of 30 px rows with 8 px
 * gaps, `{{label}}` legends, `$__rate_interval` and template variables substituted before the
 * query is sent.
 */
import { readFileSync } from 'node:fs'

export interface GridPos {
  h: number
  w: number
  x: number
  y: number
}

export interface Target {
  refId: string
  expr: string
  legendFormat?: string
}

export interface Panel {
  type: string
  title: string
  gridPos: GridPos
  targets?: Target[]
  fieldConfig?: { defaults?: { unit?: string; custom?: { lineWidth?: number; fillOpacity?: number } } }
}

export interface Dashboard {
  title: string
  panels: Panel[]
}

export function readDashboard(file: string): Dashboard {
  const d = JSON.parse(readFileSync(file, 'utf8')) as Partial<Dashboard>
  if (typeof d.title !== 'string' || !Array.isArray(d.panels)) throw new Error(`Expected ${file} to be a Grafana dashboard (title, panels), got keys ${Object.keys(d).join(', ')}`)
  for (const p of d.panels) {
    if (p.gridPos === undefined) throw new Error(`Expected every panel of ${file} to have a gridPos, "${p.title}" has none`)
  }
  return d as Dashboard
}

export interface Variables {
  /** What `$__rate_interval` (and `$__interval`) become, a Prometheus duration such as 8s. */
  rateInterval: string
  /** Template variables by name, e.g. { instance: '.*' } (the "All" value). */
  vars: Record<string, string>
}

/**
 * The expression Grafana would send: `$name`, `${name}` and `[[name]]` replaced. A variable the
 * dashboard uses but `vars` does not know throws, so a new variable cannot be silently sent as text.
 */
export function substitute(expr: string, v: Variables): string {
  const values: Record<string, string> = { __rate_interval: v.rateInterval, __interval: v.rateInterval, __range: v.rateInterval, ...v.vars }
  return expr.replace(/\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)/g, (whole, a?: string, b?: string, c?: string) => {
    const name = a ?? b ?? c ?? ''
    const value = values[name]
    if (value === undefined) throw new Error(`Expected a value for the variable ${whole} in ${expr}`)
    return value
  })
}

/** A series' name in the legend: legendFormat with `{{label}}` filled in, else Grafana's `metric{a="b"}`. */
export function legendName(format: string | undefined, labels: Record<string, string>): string {
  if (format !== undefined && format.trim() !== '' && format !== '__auto') {
    return format.replace(/\{\{\s*([\w.]+)\s*\}\}/g, (_m, name: string) => labels[name] ?? '')
  }
  const { __name__: metric, ...rest } = labels
  const inner = Object.entries(rest).map(([k, val]) => `${k}="${val}"`).join(', ')
  return inner === '' ? (metric ?? '{}') : `${metric ?? ''}{${inner}}`
}

export interface Box {
  left: number
  top: number
  width: number
  height: number
}

export const GRID = { columns: 24, cellHeight: 30, gap: 8 } as const

/** Where a gridPos lands on a page `width` px wide (Grafana's react-grid-layout arithmetic). */
export function place(pos: GridPos, width: number): Box {
  const col = (width + GRID.gap) / GRID.columns
  return {
    left: Math.round(pos.x * col),
    top: pos.y * (GRID.cellHeight + GRID.gap),
    width: Math.round(pos.w * col - GRID.gap),
    height: pos.h * GRID.cellHeight + (pos.h - 1) * GRID.gap,
  }
}

/** Height of the whole grid: the bottom of its lowest panel. */
export function gridHeight(panels: Panel[], width: number): number {
  return Math.max(0, ...panels.map((p) => {
    const b = place(p.gridPos, width)
    return b.top + b.height
  }))
}

function trim(n: number, decimals: number): string {
  const s = n.toFixed(decimals)
  const t = s.includes('.') ? s.replace(/\.?0+$/, '') : s
  return t === '-0' ? '0' : t
}

function scaled(v: number, steps: [number, string][], decimals: number): string {
  const a = Math.abs(v)
  let chosen: [number, string] = steps[0]!
  for (const s of steps) if (a >= s[0]) chosen = s
  return `${trim(v / chosen[0], decimals)}${chosen[1]}`
}

/** A value as Grafana writes it for the panel's unit (the few units this dashboard uses, others plain). */
export function formatValue(v: number, unit: string | undefined, decimals = 2): string {
  if (!Number.isFinite(v)) return String(v)
  if (v === 0) {
    if (unit === 's') return '0 s'
    if (unit === 'bytes') return '0 B'
  }
  switch (unit) {
    case 's':
      return scaled(v, [[1e-9, ' ns'], [1e-6, ' µs'], [1e-3, ' ms'], [1, ' s'], [60, ' min'], [3600, ' hour']], decimals)
    case 'bytes':
      return scaled(v, [[1, ' B'], [1024, ' KiB'], [1024 ** 2, ' MiB'], [1024 ** 3, ' GiB'], [1024 ** 4, ' TiB']], decimals)
    case 'reqps':
      return `${scaled(v, [[1, ''], [1e3, ' K'], [1e6, ' Mil']], decimals)} req/s`
    case 'ops':
      return `${scaled(v, [[1, ''], [1e3, ' K'], [1e6, ' Mil']], decimals)} ops/s`
    default:
      return scaled(v, [[1, ''], [1e3, ' K'], [1e6, ' Mil'], [1e9, ' Bil']], decimals)
  }
}

/** Round tick values from at or below min to at or above max: about `count` of them at 1, 2 or 5 times a power of ten (bytes: powers of two). */
export function niceTicks(min: number, max: number, count = 5, unit?: string): number[] {
  if (!(max > min)) max = min + 1
  const rough = (max - min) / count
  let step: number
  if (unit === 'bytes' && rough >= 1024) {
    const p = 1024 ** Math.floor(Math.log(rough) / Math.log(1024))
    step = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024].map((m) => m * p).find((s) => s >= rough) ?? rough
  } else {
    const p = 10 ** Math.floor(Math.log10(rough))
    step = [1, 2, 2.5, 5, 10].map((m) => m * p).find((s) => s >= rough) ?? 10 * p
  }
  const ticks: number[] = []
  for (let t = Math.floor(min / step + 1e-9) * step; ticks.length < 50; t += step) {
    ticks.push(Number(t.toPrecision(12)))
    if (t >= max - step * 1e-9) break
  }
  return ticks
}

/** Decimals that tell the ticks apart (0.25 s steps need 2), at most 3. */
export function tickDecimals(ticks: number[]): number {
  for (let d = 0; d < 3; d++) {
    if (ticks.every((t) => Math.abs(t * 10 ** d - Math.round(t * 10 ** d)) < 1e-6)) return d
  }
  return 3
}

/** Times for the x axis (unix seconds): every 10, 15, 30 s, 1, 2, 5, 10 min..., about `count` of them. */
export function timeTicks(start: number, end: number, count = 6): number[] {
  const span = Math.max(1, end - start)
  const step = [5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600].find((s) => span / s <= count) ?? 3600
  const ticks: number[] = []
  for (let t = Math.ceil(start / step) * step; t <= end; t += step) ticks.push(t)
  return ticks
}

/** HH:MM:SS of a unix time, in the machine's time zone (like Grafana's browser time). */
export function clock(t: number): string {
  const d = new Date(t * 1000)
  return [d.getHours(), d.getMinutes(), d.getSeconds()].map((n) => String(n).padStart(2, '0')).join(':')
}
