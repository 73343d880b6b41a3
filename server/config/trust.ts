/**
 * FORKYARD_TRUSTED_ADDRESSES: the peers whose X-Request-ID and W3C traceparent/tracestate are kept
 * (a load balancer, an API gateway, this host). From anyone else the kit makes its own, so a client
 * cannot choose the id that `make logs REQ=` finds, nor join someone else's trace. Used by nginx
 * (a geo block, server/stack/nginx.ts) and by the workers when they face clients themselves
 * (`forkyard serve` on TCP); behind the kit's nginx the workers trust nginx, on their Unix socket.
 */
import { BlockList, isIP } from 'node:net'
import { ForkyardError, codes } from '../errors.js'
import type { Parser } from './parse.js'

/** One address or CIDR block, as written in the setting. */
export interface TrustedRange {
  text: string
  address: string
  prefix: number
  family: 'ipv4' | 'ipv6'
}

export const trustedAddresses: Parser<TrustedRange[]> = (name, raw) => {
  const out: TrustedRange[] = []
  for (const part of raw.split(',').map((s) => s.trim()).filter((s) => s !== '')) {
    if (part.toLowerCase() === 'none') continue
    const [address = '', bits] = part.split('/')
    const v = isIP(address)
    const max = v === 6 ? 128 : 32
    const prefix = bits === undefined ? max : Number(bits)
    if (v === 0 || !Number.isInteger(prefix) || prefix < 0 || prefix > max || (bits !== undefined && !/^\d{1,3}$/.test(bits))) {
      throw new ForkyardError(codes.CONFIG, `Expected ${name} to be IP addresses or CIDR blocks separated by commas (127.0.0.1,::1,10.0.0.0/8), or none, got ${JSON.stringify(part)} in ${JSON.stringify(raw)}`)
    }
    out.push({ text: part, address, prefix, family: v === 6 ? 'ipv6' : 'ipv4' })
  }
  return out
}

export function blockListOf(ranges: readonly TrustedRange[]): BlockList {
  const list = new BlockList()
  for (const r of ranges) list.addSubnet(r.address, r.prefix, r.family)
  return list
}

/** Whether a TCP peer is trusted; `undefined` (a Unix socket peer: nginx, on this host) always is. */
export function isTrusted(list: BlockList, remote: string | undefined): boolean {
  if (remote === undefined || remote === '') return true
  const addr = remote.startsWith('::ffff:') && isIP(remote.slice(7)) === 4 ? remote.slice(7) : remote
  const family = isIP(addr)
  return family !== 0 && list.check(addr, family === 6 ? 'ipv6' : 'ipv4')
}
