/**
 * What a supervised program says about itself for `/readyz` and `forkyard ps`: its pid, the
 * settings version it runs and since when, in <run dir>/<svc>.state.json (written whole, by rename).
 * The arbiter reads push's, bridge's and the nginx wrapper's to show which version each process runs.
 */
import { readFileSync, renameSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

export interface ProcessState {
  svc: string
  pid: number
  /** The settings version this process runs (config/env-file.ts versionOf). */
  version: string
  startedAt: string
  updatedAt: string
}

export function writeState(runDir: string, svc: string, version: string, startedAt: string): void {
  const path = join(runDir, `${svc}.state.json`)
  const state: ProcessState = { svc, pid: process.pid, version, startedAt, updatedAt: new Date().toISOString() }
  try {
    writeFileSync(`${path}.${process.pid}.tmp`, JSON.stringify(state))
    renameSync(`${path}.${process.pid}.tmp`, path)
  } catch {
    // The run directory is gone (the stack is going down): nothing to report to.
  }
}

export function readState(runDir: string, svc: string): ProcessState | null {
  try {
    return JSON.parse(readFileSync(join(runDir, `${svc}.state.json`), 'utf8')) as ProcessState
  } catch {
    return null
  }
}
