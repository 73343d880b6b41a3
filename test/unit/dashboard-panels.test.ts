/**
 * scripts/dashboard/: what `make dashboard-screenshot` sends Prometheus for each panel of
 * grafana/forkyard-dashboard.json (variables substituted as Grafana does), and where and how it
 * draws them (gridPos on a 24-column grid, legends, units, axis ticks, gaps in lines).
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { formatValue, gridHeight, legendName, niceTicks, place, readDashboard, substitute, tickDecimals, timeTicks } from '../../scripts/dashboard/panels.js'
import { escapeHtml, named, segments } from '../../scripts/dashboard/render.js'

const root = fileURLToPath(new URL('../..', import.meta.url))
const vars = { rateInterval: '8s', vars: { instance: '.*' } }

test('variables are substituted in every form Grafana accepts; an unknown one throws', () => {
  assert.equal(substitute('rate(x{instance=~"$instance"}[$__rate_interval])', vars), 'rate(x{instance=~".*"}[8s])')
  assert.equal(substitute('x{instance=~"${instance}"} + y{i=~"[[instance]]"} + z{i=~"${instance:regex}"}', vars), 'x{instance=~".*"} + y{i=~".*"} + z{i=~".*"}')
  assert.throws(() => substitute('x{job="$job"}', vars), /\$job/)
})

test("every query of the shipped dashboard is left with no variable once substituted", () => {
  const d = readDashboard(join(root, 'grafana', 'forkyard-dashboard.json'))
  let n = 0
  for (const p of d.panels) {
    for (const t of p.targets ?? []) {
      const expr = substitute(t.expr, vars)
      assert.doesNotMatch(expr, /\$|\[\[/, `${p.title} ${t.refId}: ${expr}`)
      n++
    }
  }
  assert.ok(n >= 19, `${n} queries`)
})

test('legends: legendFormat with {{label}} filled in (missing labels empty), else metric{labels}', () => {
  assert.equal(legendName('{{status}}', { status: '2xx' }), '2xx')
  assert.equal(legendName('rss {{worker}}', { worker: '1', __name__: 'm' }), 'rss 1')
  assert.equal(legendName('jobs {{ cause }}', {}), 'jobs ')
  assert.equal(legendName(undefined, { __name__: 'up', job: 'forkyard' }), 'up{job="forkyard"}')
  assert.equal(legendName('__auto', {}), '{}')
  const panel = { type: 'timeseries', title: 'p', gridPos: { h: 8, w: 8, x: 0, y: 0 }, targets: [{ refId: 'A', expr: 'a', legendFormat: 'a {{x}}' }, { refId: 'B', expr: 'b', legendFormat: 'b' }] }
  assert.deepEqual(named(panel, [[{ labels: { x: '1' }, points: [] }, { labels: { x: '2' }, points: [] }], [{ labels: {}, points: [[1, 2]] }]]).map((s) => s.name), ['a 1', 'a 2', 'b'])
})

test("gridPos is placed on Grafana's grid: 24 columns with 8 px gaps, 30 px rows", () => {
  // 1568 px wide: a column plus its gap is (1568 + 8) / 24 = 65.67 px.
  assert.deepEqual(place({ x: 0, y: 0, w: 24, h: 1 }, 1568), { left: 0, top: 0, width: 1568, height: 30 })
  assert.deepEqual(place({ x: 8, y: 1, w: 8, h: 8 }, 1568), { left: 525, top: 38, width: 517, height: 296 })
  assert.deepEqual(place({ x: 16, y: 9, w: 8, h: 8 }, 1568), { left: 1051, top: 342, width: 517, height: 296 })
  const d = readDashboard(join(root, 'grafana', 'forkyard-dashboard.json'))
  const boxes = d.panels.map((p) => place(p.gridPos, 1568))
  for (let i = 0; i < boxes.length; i++) {
    for (let j = i + 1; j < boxes.length; j++) {
      const [a, b] = [boxes[i]!, boxes[j]!]
      const overlap = a.left < b.left + b.width && b.left < a.left + a.width && a.top < b.top + b.height && b.top < a.top + a.height
      assert.ok(!overlap, `${d.panels[i]!.title} and ${d.panels[j]!.title} overlap`)
    }
  }
  assert.equal(gridHeight(d.panels, 1568), Math.max(...boxes.map((b) => b.top + b.height)))
})

test("values in the panel's unit", () => {
  assert.equal(formatValue(20, 'reqps', 0), '20 req/s')
  assert.equal(formatValue(2.5, 'ops', 1), '2.5 ops/s')
  assert.equal(formatValue(0.0005, 's'), '500 µs')
  assert.equal(formatValue(0.03, 's'), '30 ms')
  assert.equal(formatValue(0, 's'), '0 s')
  assert.equal(formatValue(80 * 1024 * 1024, 'bytes', 0), '80 MiB')
  assert.equal(formatValue(1500, 'short'), '1.5 K')
  assert.equal(formatValue(100, undefined, 0), '100')
  assert.equal(formatValue(-0.0001, 'short'), '0')
})

test('axis ticks: round steps covering the range, enough decimals; times on round seconds', () => {
  assert.deepEqual(niceTicks(0, 47, 5), [0, 10, 20, 30, 40, 50])
  assert.deepEqual(niceTicks(0, 2.6, 6), [0, 0.5, 1, 1.5, 2, 2.5, 3])
  assert.deepEqual(niceTicks(0, 1, 4), [0, 0.25, 0.5, 0.75, 1])
  assert.equal(tickDecimals([0, 0.25, 0.5]), 2)
  assert.equal(tickDecimals([0, 10, 20]), 0)
  assert.deepEqual(niceTicks(0, 90 * 1024 * 1024, 5, 'bytes'), [0, 32, 64, 96].map((m) => m * 1024 * 1024))
  assert.deepEqual(timeTicks(1000, 1100, 6), [1020, 1050, 1080])
  assert.deepEqual(timeTicks(1000, 1060, 4), [1005, 1020, 1035, 1050])
})

test('a line breaks where Prometheus returned no sample for longer than 1.5 steps', () => {
  assert.deepEqual(segments([[0, 1], [2, 1], [4, 1], [10, 2], [12, 2]], 2), [[[0, 1], [2, 1], [4, 1]], [[10, 2], [12, 2]]])
  assert.deepEqual(segments([[0, 1], [2, Number.NaN], [4, 1]], 2), [[[0, 1]], [[4, 1]]])
  assert.equal(escapeHtml('<a & "b">'), '&#60;a &#38; &#34;b&#34;&#62;')
})
