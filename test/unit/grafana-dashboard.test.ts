/** grafana/forkyard-dashboard.json reads what the scrape exports (metrics/families.ts): no panel on a metric that does not exist. */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { METRIC_NAMES } from '../../server/metrics/families.js'

const file = join(fileURLToPath(new URL('../..', import.meta.url)), 'grafana', 'forkyard-dashboard.json')

interface Panel {
  type: string
  title: string
  gridPos?: { h: number; w: number; x: number; y: number }
  datasource?: { type: string; uid: string }
  targets?: { expr: string; refId: string }[]
}

test('the Grafana dashboard is well-formed JSON with a Prometheus datasource variable', () => {
  const d = JSON.parse(readFileSync(file, 'utf8')) as { schemaVersion: number; uid: string; templating: { list: { name: string; type: string; query: unknown }[] }; panels: Panel[] }
  assert.ok(d.schemaVersion >= 36, `schemaVersion ${d.schemaVersion}`)
  assert.equal(d.uid, 'forkyard')
  const ds = d.templating.list.find((v) => v.type === 'datasource')
  assert.deepEqual([ds?.name, ds?.query], ['datasource', 'prometheus'])
  const ids = new Set<number>()
  for (const p of d.panels) {
    assert.ok(p.gridPos !== undefined && p.gridPos.x + p.gridPos.w <= 24, `${p.title}: inside the 24-column grid`)
    if (p.type === 'row') continue
    assert.equal(p.datasource?.uid, '${datasource}', `${p.title} reads the datasource variable`)
    assert.ok((p.targets ?? []).length > 0, `${p.title} has a query`)
    ids.add(p.gridPos.y * 100 + p.gridPos.x)
  }
  assert.equal(ids.size, d.panels.filter((p) => p.type !== 'row').length, 'no two panels at the same place')
})

test("every metric a panel's expression names is one the scrape exports", () => {
  const d = JSON.parse(readFileSync(file, 'utf8')) as { panels: Panel[] }
  const used = new Set<string>()
  for (const p of d.panels) {
    for (const target of p.targets ?? []) {
      const names = target.expr.match(/\bforkyard_[a-z0-9_]+/g) ?? []
      assert.ok(names.length > 0, `${p.title} ${target.refId}: names a forkyard metric`)
      for (const n of names) {
        assert.ok(METRIC_NAMES.includes(n), `${p.title} ${target.refId}: ${n} is not exported`)
        used.add(n)
      }
    }
  }
  for (const wanted of ['forkyard_http_requests_total', 'forkyard_http_request_duration_seconds_bucket', 'forkyard_workers_ready', 'forkyard_worker_restarts_total', 'forkyard_push_connections', 'forkyard_bridge_publishes_total', 'forkyard_jobs_tasks', 'forkyard_nginx_connections']) {
    assert.ok(used.has(wanted), `a panel shows ${wanted}`)
  }
})
