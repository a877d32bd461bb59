'use strict';
// The worker: `await knit.serve({ hello, hash })` serves functions to the host that started
// this process (KNIT_REGION / KNIT_SLOT, MAP-5) until it shuts the pool down.
//
// libknit runs the worker loop on a native thread; each request comes to the event loop,
// the handler runs (sync or async), and its result or thrown error goes back. The request's
// payload is a view of the request's own bytes (possibly the shared ring), detached when the
// handler settles: `ctx.payload` is valid only until then; decoded values are private copies.
const native = require('./native');
const payload = require('./payload');
const errors = require('./errors');
const { OP, Sender, Receiver } = require('./channel');

const { KnitError, HandlerFailed, Cancelled } = errors;
const HANDLER = Symbol('knit.handler');

/** Marks a handler: `raw` (it receives the Context only), `streaming` (it may open a channel
    to the caller; generator functions are streaming on their own). */
function handler(fn, options = {}) {
  if (typeof fn !== 'function') throw new TypeError('a handler is a function');
  return { [HANDLER]: true, fn, raw: Boolean(options.raw), streaming: Boolean(options.streaming) || isGenerator(fn) };
}

function isGenerator(fn) {
  const kind = fn.constructor && fn.constructor.name;
  return kind === 'GeneratorFunction' || kind === 'AsyncGeneratorFunction';
}

function normalise(handlers) {
  const entries = handlers instanceof Map ? [...handlers] : Object.entries(handlers || {});
  const out = [];
  for (const [name, h] of entries) {
    if (typeof h === 'function') out.push({ name, ...handler(h) });
    else if (h && h[HANDLER]) out.push({ name, ...h });
  }
  if (out.length === 0) throw new TypeError('serve() needs at least one handler function');
  return out;
}

/** What a handler sees of its call (its second argument, or its only one when raw). */
class Context {
  constructor(handle, id, view, contentType, requestId, deadlineNs) {
    this._handle = handle;
    this._controller = new AbortController();
    /** Aborted when the host cancels the call (or its deadline passes and the host says so). */
    this.signal = this._controller.signal;
    /** The request id (per worker, increasing). */
    this.requestId = requestId;
    /** The payload's content type. */
    this.contentType = contentType;
    /** The request bytes: valid only until the handler settles (then detached). */
    this.payload = Buffer.from(view.buffer, view.byteOffset, view.length);
    /** The deadline as CLOCK_MONOTONIC ns (0: none). */
    this.deadlineNs = deadlineNs;
    this.id = id;
  }

  /** Whether the host cancelled the call. */
  get cancelled() {
    return this.signal.aborted;
  }

  /** Milliseconds until the deadline (negative once passed), or null without one. */
  timeLeft() {
    if (!this.deadlineNs) return null;
    return (this.deadlineNs - Number(native.monotonicNs())) / 1e6;
  }

  /** The decoded payload (a private copy when the value would share its bytes). */
  value() {
    const ct = this.contentType;
    if (ct === payload.UTF8 || ct === payload.JSON) return payload.decode(this.payload, ct);
    return payload.decode(Buffer.from(this.payload), ct);
  }

  _run(op, data, ct, code) {
    return native.reqOp(this._handle, op, data, ct, code);
  }

  /** Opens a channel to the caller (streaming handlers only): a Sender. */
  async openChannel() {
    await this._run(OP.OPEN, undefined, 0, 0);
    return new Sender((op, d, ct, code) => this._run(op, d, ct, code), () => {});
  }

  /** Takes the channel the host opened for this call: a Receiver (async iterator). */
  async takeChannel() {
    await this._run(OP.TAKE, undefined, 0, 0);
    return new Receiver((op, d, ct, code) => this._run(op, d, ct, code), () => {});
  }
}

function failure(e) {
  if (e instanceof KnitError) return [e.code, e.message];
  if (e instanceof Error) return [HandlerFailed.code, `${e.name}: ${e.message}`];
  return [HandlerFailed.code, String(e)];
}

async function drive(iterator, ctx) {
  const tx = await ctx.openChannel();
  try {
    for (;;) {
      // eslint-disable-next-line no-await-in-loop
      const step = await iterator.next();
      if (step.done) {
        await tx.close();
        return step.value;
      }
      // eslint-disable-next-line no-await-in-loop
      await tx.send(step.value);
    }
  } catch (e) {
    await tx.abort().catch(() => {});
    throw e;
  }
}

function reply(handle, result) {
  const { data, contentType } = payload.encode(result);
  native.reqReply(handle, data, contentType);
}

/** Serves `handlers` ({name: fn} or a Map; fn(value, ctx) returns the result or a Promise of
    it; generators stream) until the host shuts the pool down: resolves then, rejects with
    the KnitError that ended the worker otherwise (PeerDied when the host died).
    options: {region, slot} to attach to a named region instead of the environment's,
    {spin: 'none'} to park at once when idle. */
function serve(handlers, options = {}) {
  const d = dispatcher(handlers);
  const nativeOptions = {};
  if (options.region !== undefined) {
    nativeOptions.region = options.region;
    nativeOptions.slot = options.slot ?? 1;
  }
  if (options.spin === 'none') nativeOptions.spinNone = true;
  return native.serve(nativeOptions, d.names, d.streaming, d.onRequest, d.onCancel);
}

/** The JavaScript side of serving `handlers`: their names and kinds, and the functions the
    native layer calls with each request and cancellation (a worker process's serve(), or
    the thread workers of a pool in this process). */
function dispatcher(handlers) {
  const list = normalise(handlers);
  const contexts = new Map();
  const onRequest = (handle, id, index, view, contentType, requestId, deadlineNs) => {
    const h = list[index];
    const ctx = new Context(handle, id, view, contentType, requestId, deadlineNs);
    contexts.set(id, ctx);
    const done = () => contexts.delete(id);
    const fail = (e) => {
      const [code, message] = failure(e);
      native.reqError(handle, code, message);
      done();
    };
    let result;
    try {
      result = h.raw ? h.fn(ctx) : h.fn(ctx.value(), ctx);
      if (result && typeof result.next === 'function' && h.streaming && isGenerator(h.fn)) {
        result = drive(result, ctx);
      }
      if (result && typeof result.then === 'function') {
        result.then((r) => {
          try {
            reply(handle, r);
            done();
          } catch (e) {
            fail(e);
          }
        }, fail);
        return;
      }
      reply(handle, result);
      done();
    } catch (e) {
      fail(e);
    }
  };
  const onCancel = (id) => {
    const ctx = contexts.get(id);
    if (ctx) ctx._controller.abort(new Cancelled('the caller cancelled the call'));
  };
  return { names: list.map((h) => h.name), streaming: list.map((h) => h.streaming), onRequest, onCancel };
}

module.exports = { serve, handler, dispatcher, Context };
