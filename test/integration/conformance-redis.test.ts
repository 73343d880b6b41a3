/**
 * The bridge + push conformance suite (test/conformance/suite.ts) against the Redis engine:
 * `forkyard bridge` with FORKYARD_ENGINE=redis://… on a real redis-server (append-only file,
 * fsync always), and `forkyard push`, as processes. Killing the store is kill -9 of redis-server.
 */
import { redisEngine } from '../conformance/engine.js'
import { conformanceSuite } from '../conformance/suite.js'

conformanceSuite('redis', redisEngine)
