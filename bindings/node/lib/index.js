'use strict';
// Knit for Node.js: call functions in worker processes of any language over shared memory
// (`await pool.call.hello('World!')`), or serve JavaScript functions to a host of any
// language (`await knit.serve({ hello })`).
const native = require('./native');
const errors = require('./errors');
const payload = require('./payload');
const { Pool, Stream } = require('./pool');
const { Sender, Receiver } = require('./channel');
const { serve, handler, Context } = require('./worker');

/** Starts a pool of worker processes; resolves once each is ready. */
function pool(options) {
  return Pool.start(options);
}

module.exports = {
  pool,
  Pool,
  Stream,
  Sender,
  Receiver,
  serve,
  handler,
  Context,
  Payload: payload.Payload,
  ArrayValue: payload.ArrayValue,
  typed: payload.typed,
  encode: payload.encode,
  decode: payload.decode,
  BYTES: payload.BYTES,
  UTF8: payload.UTF8,
  JSON: payload.JSON,
  CBOR: payload.CBOR,
  TYPED_ARRAY: payload.TYPED_ARRAY,
  MSGPACK: payload.MSGPACK,
  APPLICATION: payload.APPLICATION,
  /** libknit's version string. */
  version: () => native.version(),
  /** Live libknit handles (a leak check: 0 once everything is closed and collected). */
  handleCount: () => native.handleCount(),
  /** CLOCK_MONOTONIC in ns (BigInt), the clock of deadlines. */
  monotonicNs: () => native.monotonicNs(),
  ...errors,
};
module.exports.default = module.exports;
