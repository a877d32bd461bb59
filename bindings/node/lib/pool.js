'use strict';
// The host: `const pool = await knit.pool({ workers: 4, command: ['./worker'] })`, then
// `await pool.call.hello('World!')` or `await pool.call('hello', 'World!')`.
//
// A call never blocks the event loop on its outcome: the native layer starts it
// (knit_call_async, which copies the request into the ring) and settles its Promise from
// libknit's completion, delivered to the loop through a thread-safe function. Calls beyond
// what the workers can hold in flight wait here, in JavaScript, so that starting one never
// waits inside libknit for a free slot.
const native = require('./native');
const payload = require('./payload');
const { Sender, Receiver } = require('./channel');
const { Cancelled, Shutdown } = require('./errors');

const SPIN = { balanced: 0, 'lowest-latency': 1, none: 2 };
const BACKPRESSURE = { wait: 0, error: 1 };
const FOREVER = Infinity;

function ms(v, what) {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'number' || !(v >= 0)) throw new RangeError(`${what} is a number of milliseconds`);
  return v === Infinity ? FOREVER : Math.round(v * 1e6);
}

/** Options of knit.pool() to the native layer's shape. */
function nativeOptions(o) {
  const out = { workers: o.workers ?? 1 };
  if (o.external) {
    // No workers started: someone else starts them; they attach by region name and index.
    out.external = true;
  } else if (o.handlers) {
    // Thread workers of this process: their handlers run on this event loop. A call waiting
    // for ring room on this loop would wait for handlers that need the loop: a full ring
    // fails the call with WouldBlock instead (unless asked otherwise).
    // eslint-disable-next-line global-require
    out.threads = require('./worker').dispatcher(o.handlers);
    if (o.backpressure === undefined) out.backpressure = BACKPRESSURE.error;
  } else {
    let command = o.command;
    if (typeof command === 'string') command = [command];
    if (!Array.isArray(command) || command.length === 0) {
      throw new TypeError('a pool needs `command`: [program, ...args] (or `handlers`)');
    }
    out.argv = command.map(String);
  }
  if (o.env) out.envp = Object.entries(o.env).map(([k, v]) => `${k}=${v}`);
  if (o.spin !== undefined) {
    if (typeof o.spin === 'number') {
      out.spinPolicy = 3;
      out.spinIterations = o.spin;
    } else if (o.spin in SPIN) {
      out.spinPolicy = SPIN[o.spin];
    } else {
      throw new RangeError(`spin is "balanced", "lowest-latency", "none" or a count, not ${o.spin}`);
    }
  }
  if (Array.isArray(o.ringSize)) {
    [out.ringSize, out.responseRingSize] = o.ringSize;
  } else if (o.ringSize !== undefined) {
    out.ringSize = o.ringSize;
  }
  out.channelSlots = o.channels ?? 8;
  out.channelRing = o.channelRing ?? 65536;
  if (out.channelSlots === 0) delete out.channelRing;
  if (o.inflight !== undefined) out.inflight = o.inflight;
  if (o.maxMessageLen !== undefined) out.maxMessageLen = o.maxMessageLen;
  if (o.deadline !== undefined) out.deadlineNs = ms(o.deadline, 'deadline');
  if (o.restart !== undefined) out.restart = Boolean(o.restart);
  if (o.backpressure !== undefined) {
    if (!(o.backpressure in BACKPRESSURE)) throw new RangeError('backpressure is "wait" or "error"');
    out.backpressure = BACKPRESSURE[o.backpressure];
  }
  if (o.startTimeout !== undefined) out.startTimeoutNs = ms(o.startTimeout, 'startTimeout');
  if (o.shutdownTimeout !== undefined) out.shutdownTimeoutNs = ms(o.shutdownTimeout, 'shutdownTimeout');
  return out;
}

/** How long a lone call polls for its outcome before it leaves it to the completion thread:
    like the spin policy of libknit's waiters (none: never; lowest-latency: longer). */
function spinNs(o) {
  if (o.handlers) return 0; // their handlers need this loop: waiting on it cannot help
  if (o.callSpin !== undefined) return ms(o.callSpin, 'callSpin');
  if (o.spin === 'none') return 0;
  if (o.spin === 'lowest-latency') return 100000;
  return 20000;
}

/** A call's deadline argument: 0 = the pool's default, else ns from now. */
function deadlineNs(options) {
  if (options.deadline === undefined || options.deadline === null) return 0;
  const ns = ms(options.deadline, 'deadline');
  return ns === 0 ? 1 : ns; // 0 would mean "the pool's default": an expired deadline is 1 ns
}

/** A call whose worker streams messages back: iterate it, then await `result`. */
class Stream extends Receiver {
  constructor(run, dispose, result) {
    super(run, dispose);
    /** The call's result (decoded), once the handler returned. */
    this.result = result;
    result.catch(() => {}); // the iteration reports the failure when it is not awaited
  }

  async _end() {
    await this.result; // a failed call fails the iteration with its error
    return { done: true, value: undefined };
  }
}

class Pool {
  constructor(handle, options) {
    this._handle = handle;
    this._closed = false;
    this._workers = options.workers ?? 1;
    this._inflight = 0;
    this._limit = Math.max(1, this._workers * (options.inflight ?? 256));
    this._waiting = [];
    this._spinNs = spinNs(options);
    const callFn = (name, value, opts) => this._decoded(name, value, opts);
    /** `pool.call(name, value, options)` and `pool.call.name(value, options)`. */
    this.call = new Proxy(callFn, {
      get(target, prop, receiver) {
        if (typeof prop === 'string' && prop !== 'then' && !(prop in Function.prototype)) {
          return (value, opts) => callFn(prop, value, opts);
        }
        return Reflect.get(target, prop, receiver);
      },
    });
  }

  /** Starts a pool (see index.d.ts for the options); resolves once every worker is ready. */
  static async start(options) {
    const handle = await native.poolStart(nativeOptions(options));
    return new Pool(handle, options);
  }

  _check() {
    if (this._closed) throw new Shutdown('the pool is closed');
  }

  // Runs `start` now, or once a call in flight has settled; `start` returns the native
  // call's Promise (or [Promise, ...]) and the slot is freed when that Promise settles.
  _slot(start) {
    return new Promise((resolve, reject) => {
      const go = () => {
        let started;
        try {
          this._check();
          started = start();
        } catch (e) {
          this._release();
          reject(e);
          return;
        }
        const settled = Array.isArray(started) ? started[0] : started;
        settled.then(
          () => this._release(),
          () => this._release(),
        );
        resolve(started);
      };
      if (this._inflight < this._limit) {
        this._inflight++;
        go();
      } else {
        this._waiting.push(() => {
          this._inflight++;
          go();
        });
      }
    });
  }

  _release() {
    this._inflight--;
    const next = this._waiting.shift();
    if (next) next();
  }

  // Starts a call with cancellation wired to options.signal; resolves to {data, contentType}.
  async _raw(start, options) {
    const signal = options.signal;
    if (signal && signal.aborted) throw new Cancelled('the call was aborted before it started');
    const started = await this._slot(() => start(Boolean(signal)));
    if (!signal) return started;
    const [promise, handle] = started;
    const onAbort = () => native.cancel(handle);
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      return await promise;
    } finally {
      signal.removeEventListener('abort', onAbort);
    }
  }

  /** Calls `name` with `value`; resolves to the raw result `{data: Buffer, contentType}`.
      The Buffer is the response's own memory (no copy). */
  callRaw(name, value, options = {}) {
    try {
      this._check();
    } catch (e) {
      return Promise.reject(e);
    }
    const { data, contentType } = payload.encode(value, options.contentType);
    const dl = deadlineNs(options);
    const worker = options.worker;
    // A lone call may wait a few microseconds for its outcome on the event loop (the fast
    // path: no thread hand-off); with other calls in flight it never does.
    return this._raw((want) => native.call(this._handle, name, data, contentType, dl, want, worker, this._inflight === 1 ? this._spinNs : 0), options);
  }

  async _decoded(name, value, options = {}) {
    const r = await this.callRaw(name, value, options);
    return payload.decode(r.data, r.contentType);
  }

  /** A call whose request of `len` bytes is written in place: `fill(view)` writes into the
      request ring itself, synchronously; the view is detached when fill returns. */
  async callLoan(name, len, fill, options = {}) {
    this._check();
    const ct = options.contentType ?? payload.BYTES;
    const dl = deadlineNs(options);
    const r = await this._raw((want) => native.callLoan(this._handle, name, len, ct, dl, fill, want), options);
    return options.raw ? r : payload.decode(r.data, r.contentType);
  }

  /** A call whose handler streams messages back (it opens a channel to the caller):
      `for await (const m of pool.stream('progress', 3)) ...`, then `await stream.result`. */
  stream(name, value, options = {}) {
    this._check();
    const { data, contentType } = payload.encode(value, options.contentType);
    const [promise, rx, handle] = native.callStream(this._handle, name, data, contentType, deadlineNs(options));
    const result = promise.then((r) => payload.decode(r.data, r.contentType));
    const s = new Stream(
      (op, d, ct, code) => native.chanOp(rx, op, d, ct, code),
      () => native.chanDispose(rx),
      result,
    );
    s.cancel = () => native.cancel(handle);
    const { signal } = options;
    if (signal) {
      if (signal.aborted) s.cancel();
      signal.addEventListener('abort', s.cancel, { once: true });
      const forget = () => signal.removeEventListener('abort', s.cancel);
      result.then(forget, forget);
    }
    return s;
  }

  /** A call with a channel from this host to its handler (which takes it): returns the
      `sender` and the call's `result`. */
  callWithChannel(name, value, options = {}) {
    this._check();
    const { data, contentType } = payload.encode(value, options.contentType);
    const [promise, tx, handle] = native.callWithChannel(this._handle, name, data, contentType, deadlineNs(options));
    const sender = new Sender(
      (op, d, ct, code) => native.chanOp(tx, op, d, ct, code),
      () => native.chanDispose(tx),
    );
    const result = promise.then((r) => payload.decode(r.data, r.contentType));
    const cancel = () => native.cancel(handle);
    const { signal } = options;
    if (signal) {
      if (signal.aborted) cancel();
      signal.addEventListener('abort', cancel, { once: true });
      const forget = () => signal.removeEventListener('abort', cancel);
      result.then(forget, forget);
    }
    return { sender, result, cancel };
  }

  /** Streams every message of `messages` (an iterable or async iterable) to the handler of
      `name`, closes the channel, and resolves to the call's result. */
  async callWithStream(name, messages, value, options = {}) {
    const { sender, result } = this.callWithChannel(name, value, options);
    try {
      for await (const m of messages) await sender.send(m);
      await sender.close();
    } catch (e) {
      await sender.abort().catch(() => {});
      await result.catch(() => {});
      throw e;
    }
    return result;
  }

  /** Worker `index` (1 to workers): {index, pid, ready, dead, outstanding, starts}. */
  worker(index) {
    this._check();
    return native.poolWorker(this._handle, index);
  }

  /** Every worker's state. */
  workers() {
    const out = [];
    for (let i = 1; i <= this._workers; i++) out.push(this.worker(i));
    return out;
  }

  /** Participant entry `index` of the region (0 the host), read once and validated:
      {index, state (0 EMPTY ... 5 DEAD), role, pid, epoch}. */
  participant(index) {
    this._check();
    return native.poolParticipant(this._handle, index);
  }

  /** Waits (at most `timeout` ms; Infinity: no bound) until worker `index` is ready, and
      resolves to its functions. For pools of external workers, whose start does not wait. */
  waitWorker(index, timeout = Infinity) {
    this._check();
    return native.poolWaitWorker(this._handle, index, ms(timeout, 'timeout'));
  }

  /** Sends worker `index` SHUTDOWN and waits (at most `timeout` ms) until it left; resolves
      to its participant entry then. */
  async releaseWorker(index, timeout = Infinity) {
    this._check();
    await native.poolReleaseWorker(this._handle, index, ms(timeout, 'timeout'));
    return this.participant(index);
  }

  /** Reserves worker `index`'s entry again (external pools) so that a new worker can attach;
      returns its epoch. */
  reserveWorker(index) {
    this._check();
    return native.poolReserveWorker(this._handle, index);
  }

  /** The region's header: name, geometry, poison state. */
  info() {
    this._check();
    return native.poolInfo(this._handle);
  }

  /** Shuts the pool down (workers leave; calls still outstanding fail with Shutdown). */
  async close() {
    if (this._closed) return;
    this._closed = true;
    const waiting = this._waiting.splice(0);
    await native.poolClose(this._handle);
    for (const w of waiting) w(); // each fails with Shutdown
  }
}

if (Symbol.asyncDispose) {
  Pool.prototype[Symbol.asyncDispose] = function dispose() {
    return this.close();
  };
}

module.exports = { Pool, Stream };
