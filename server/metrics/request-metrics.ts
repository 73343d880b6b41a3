/**
 * A worker's request counters, read by the arbiter from each heartbeat (arbiter/ipc.ts
 * WorkerMetrics) and summed into one scrape (metrics/registry.ts). Recording a request is a few
 * array increments: no label strings, no allocation, so the tuned request path stays as fast.
 *   route class: app (the app's requests), health (/healthz and /readyz answered by the worker)
 *   status class: 1xx .. 5xx (anything outside 100..599 counts as 5xx)
 */
import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks'
import type { WorkerMetrics } from '../arbiter/ipc.js'
import { DurationHistogram } from './histogram.js'

export const ROUTE_CLASSES = ['app', 'health'] as const
export type RouteClass = (typeof ROUTE_CLASSES)[number]
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx'] as const

export const ROUTE_APP = 0
export const ROUTE_HEALTH = 1

/** 0..4 for 1xx..5xx; out-of-range statuses count as 5xx. */
export function statusClass(status: number): number {
  const c = Math.floor(status / 100) - 1
  return c >= 0 && c <= 4 ? c : 4
}

export class RequestMetrics {
  /** requests[route * 5 + status class] */
  private readonly requests = new Float64Array(ROUTE_CLASSES.length * STATUS_CLASSES.length)
  private readonly duration = new DurationHistogram()
  private readonly loop: IntervalHistogram = monitorEventLoopDelay({ resolution: 20 })

  constructor() {
    this.loop.enable()
  }

  /** An app request finished after `ms` milliseconds. */
  app(status: number, ms: number): void {
    this.requests[ROUTE_APP * 5 + statusClass(status)]!++
    this.duration.observe(ms / 1000)
  }

  /** A health probe answered by the worker itself. */
  health(status: number): void {
    this.requests[ROUTE_HEALTH * 5 + statusClass(status)]!++
  }

  /** For a heartbeat: totals since start; the event loop's delay since the previous snapshot. */
  snapshot(): WorkerMetrics {
    const mem = process.memoryUsage()
    const m: WorkerMetrics = {
      requests: Array.from(this.requests),
      duration: this.duration.snapshot(),
      loopDelayP99: this.loop.count > 0 ? this.loop.percentile(99) / 1e9 : 0,
      loopDelayMax: this.loop.count > 0 ? this.loop.max / 1e9 : 0,
      rss: mem.rss,
      heapUsed: mem.heapUsed,
      heapTotal: mem.heapTotal,
    }
    this.loop.reset()
    return m
  }

  stop(): void {
    this.loop.disable()
  }
}
