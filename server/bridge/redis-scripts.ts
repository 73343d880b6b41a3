/**
 * The Redis engine's key names, Lua scripts and the pure part of its history answer (unit-tested),
 * for redis-store.ts. Every key is under FORKYARD_ENGINE_PREFIX (default `forkyard:`):
 *   <prefix>meta                         hash {epoch, runid}: the history generation and the run_id
 *                                        of the Redis server it was last verified against
 *   <prefix>offsets:<epoch>              hash channel -> last offset
 *   <prefix>hist:<epoch>:<channel>       stream, entry id <offset>-0, fields ts, req, data; at most
 *                                        FORKYARD_BRIDGE_HISTORY_COUNT entries (1 for $sys:...),
 *                                        expires after FORKYARD_BRIDGE_HISTORY_AGE without a publish
 *   <prefix>idem:<epoch>:p:<pub>:<seq>   first offset of a (publisher, seq), or
 *   <prefix>idem:<epoch>:k:<key>         of an idempotency key; TTL max(60 s, history age)
 *   <prefix>messages                     pub/sub channel: one RedisPayload (wire.ts) per message
 * The epoch is part of the names, so a new epoch starts on empty keys: offsets from 1, stream ids
 * from 1-0 (XADD refuses an id below the stream's last), no dedupe entry of a lost generation.
 */
import type { Range } from './history.js'

export interface RedisKeys {
  meta: string
  messages: string
  offsets: (epoch: string) => string
  hist: (epoch: string, channel: string) => string
  idem: (epoch: string, identity: { pub: string; seq: number; idemKey: string }) => string
}

export function redisKeys(prefix: string): RedisKeys {
  return {
    meta: `${prefix}meta`,
    messages: `${prefix}messages`,
    offsets: (epoch) => `${prefix}offsets:${epoch}`,
    hist: (epoch, channel) => `${prefix}hist:${epoch}:${channel}`,
    idem: (epoch, m) => (m.idemKey !== '' ? `${prefix}idem:${epoch}:k:${m.idemKey}` : `${prefix}idem:${epoch}:p:${m.pub}:${m.seq}`),
  }
}

/**
 * check(KEYS: meta; ARGV: runid, candidate epoch, keep, prefix, old offsets TTL ms) -> epoch.
 * Run by each bridge on every (re)connection, with the run_id of the server it reached. The
 * epoch stays when meta was written by this very server run, or when `keep` is '1' (the server
 * writes every command to its append-only file before answering, and it is the same server as
 * before): then nothing acknowledged can have been lost. Anything else - meta missing (a restart
 * without persistence), a server restarted from a snapshot, a failover to a replica - starts the
 * candidate epoch, and every subscriber is told.
 */
export const CHECK_LUA = `
local m = redis.call('HMGET', KEYS[1], 'runid', 'epoch')
if m[2] and m[1] == ARGV[1] then return m[2] end
if m[2] and ARGV[3] == '1' then
  redis.call('HSET', KEYS[1], 'runid', ARGV[1])
  return m[2]
end
if m[2] then redis.call('PEXPIRE', ARGV[4] .. 'offsets:' .. m[2], ARGV[5]) end
redis.call('HSET', KEYS[1], 'runid', ARGV[1], 'epoch', ARGV[2])
return ARGV[2]
`

/**
 * publish(KEYS: meta, idem, offsets, hist; ARGV: runid, epoch, channel, ts, reqId, data, maxlen,
 * ageMs, idemTtlSeconds, messages channel) -> {'ok', offset} | {'dup', first offset} | {'stale'}.
 * 'stale': meta is not what the bridge verified (the server restarted, or another bridge started a
 * new epoch): the bridge runs check again and retries. The payload is wire.ts encodePayload().
 */
export const PUBLISH_LUA = `
local m = redis.call('HMGET', KEYS[1], 'runid', 'epoch')
if m[1] ~= ARGV[1] or m[2] ~= ARGV[2] then return {'stale'} end
local first = redis.call('GET', KEYS[2])
if first then return {'dup', tonumber(first)} end
local offset = redis.call('HINCRBY', KEYS[3], ARGV[3], 1)
redis.call('SET', KEYS[2], offset, 'EX', ARGV[9])
redis.call('XADD', KEYS[4], 'MAXLEN', ARGV[7], offset .. '-0', 'ts', ARGV[4], 'req', ARGV[5], 'data', ARGV[6])
if tonumber(ARGV[8]) > 0 then redis.call('PEXPIRE', KEYS[4], ARGV[8]) end
redis.call('PUBLISH', ARGV[10], offset .. '\\n' .. ARGV[2] .. '\\n' .. ARGV[4] .. '\\n' .. ARGV[5] .. '\\n' .. ARGV[3] .. '\\n' .. ARGV[6])
return {'ok', offset}
`

/**
 * range(KEYS: meta; ARGV: prefix, channel, after) -> {epoch, last, entries}: one consistent read
 * in the epoch in force in Redis. epoch '' = no meta (nobody verified the server yet); last -1 = a
 * channel never published in this epoch; entries = XRANGE from <after+1>-0.
 */
export const RANGE_LUA = `
local epoch = redis.call('HGET', KEYS[1], 'epoch')
if not epoch then return {''} end
local last = redis.call('HGET', ARGV[1] .. 'offsets:' .. epoch, ARGV[2])
if not last then return {epoch, -1} end
local entries = {}
if tonumber(last) > tonumber(ARGV[3]) then
  entries = redis.call('XRANGE', ARGV[1] .. 'hist:' .. epoch .. ':' .. ARGV[2], ARGV[3] + 1 .. '-0', '+')
end
return {epoch, tonumber(last), entries}
`

export interface HistEntry {
  offset: number
  ts: number
  reqId: string
  data: string
}

/** XRANGE's reply ([id, [field, value, ...]][]) as entries; entries that do not parse are skipped. */
export function entriesOf(raw: unknown): HistEntry[] {
  const out: HistEntry[] = []
  if (!Array.isArray(raw)) return out
  for (const item of raw as unknown[]) {
    if (!Array.isArray(item) || typeof item[0] !== 'string' || !Array.isArray(item[1])) continue
    const fields = item[1] as string[]
    const f: Record<string, string> = {}
    for (let i = 0; i + 1 < fields.length; i += 2) f[fields[i]!] = fields[i + 1]!
    const offset = Number(item[0].split('-')[0])
    if (!Number.isSafeInteger(offset) || f.data === undefined) continue
    out.push({ offset, ts: Number(f.ts ?? 0), reqId: f.req ?? '', data: f.data })
  }
  return out
}

/**
 * History.range()'s answer from what Redis holds: `last` (-1: channel unknown in this epoch) and
 * the entries after `after`. Entries older than `ageMs` are dropped from the front (the stream
 * expires only as a whole); `complete` only when the first kept one is after + 1.
 */
export function rangeOf(
  epoch: string,
  last: number,
  entries: HistEntry[],
  after: number,
  asked: string | null,
  now: number,
  ageMs: number,
  envelope: (e: HistEntry) => string,
): Range {
  if (last < 0) return { epoch, last: 0, messages: [], complete: asked === null || asked === epoch || after === 0 }
  if (asked !== null && asked !== epoch) return { epoch, last, messages: [], complete: false }
  if (after >= last) return { epoch, last, messages: [], complete: after === last }
  let i = 0
  while (i < entries.length && ageMs > 0 && now - entries[i]!.ts > ageMs) i++
  const kept = entries.slice(i).filter((e) => e.offset > after && e.offset <= last)
  const firstKept = kept.length > 0 ? kept[0]!.offset : last + 1
  return { epoch, last, messages: kept.map(envelope), complete: firstKept <= after + 1 }
}
