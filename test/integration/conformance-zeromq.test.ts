/**
 * The bridge + push conformance suite (test/conformance/suite.ts) against the embedded engine:
 * `forkyard bridge` (ZeroMQ) and `forkyard push` as processes. A second engine adds a file like
 * this one with its own factory.
 */
import { zeromqEngine } from '../conformance/engine.js'
import { conformanceSuite } from '../conformance/suite.js'

conformanceSuite('zeromq', zeromqEngine)
