'use strict';
// Channel ends (spec/06): a Sender whose send() settles once the message is in the channel
// (awaiting it is the backpressure: it waits while the ring is full), and a Receiver that is
// an async iterator. The blocking C calls run off the event loop: a host end on a thread of
// its own, a worker's end on its handler's thread (src/chan.c, src/serve.c).
const payload = require('./payload');
const { ChannelClosed, Cancelled } = require('./errors');

/** Job codes of src/addon.h (job_op). */
const OP = { SEND: 0, TRY_SEND: 1, CLOSE: 2, ABORT: 3, RECV: 4, OPEN: 5, TAKE: 6 };

/** The writing end of a channel. */
class Sender {
  /** @param {(op:number, data?:any, contentType?:number, code?:number) => Promise<any>} run
      @param {() => void} dispose */
  constructor(run, dispose) {
    this._run = run;
    this._dispose = dispose;
    this._ended = false;
  }

  /** Sends a value (encoded like a call's payload); settles once it is in the channel,
      waiting while the channel is full. */
  send(value, options = {}) {
    const { data, contentType } = payload.encode(value, options.contentType);
    return this._run(OP.SEND, data, contentType, 0);
  }

  /** Sends bytes if there is room now; rejects with WouldBlock (nothing sent) otherwise. */
  trySend(bytes) {
    return this._run(OP.TRY_SEND, payload.encode(bytes).data, payload.BYTES, 0);
  }

  /** Closes the channel: the reader gets every message, then the end of the stream. */
  async close() {
    if (this._ended) return;
    this._ended = true;
    try {
      await this._run(OP.CLOSE, undefined, 0, 0);
    } finally {
      this._dispose();
    }
  }

  /** Aborts the channel with status `code` (default CANCELLED): the reader's receives fail
      with ChannelAborted, unread messages are dropped. */
  async abort(code = Cancelled.code) {
    if (this._ended) return;
    this._ended = true;
    try {
      await this._run(OP.ABORT, undefined, 0, code);
    } finally {
      this._dispose();
    }
  }
}

/** The reading end of a channel: `for await (const message of receiver)`. */
class Receiver {
  constructor(run, dispose) {
    this._run = run;
    this._dispose = dispose;
    this._ended = false;
  }

  /** The next message as `{data: Buffer, contentType}`; rejects with ChannelClosed at the end
      of the stream, ChannelAborted, PeerDied, ... */
  recvRaw() {
    return this._run(OP.RECV, undefined, 0, 0);
  }

  /** The next message, decoded by its content type; rejects with ChannelClosed at the end. */
  async recv() {
    const m = await this.recvRaw();
    return payload.decode(m.data, m.contentType);
  }

  /** Aborts the channel with `code` (default CANCELLED): the writer's sends fail. */
  async abort(code = Cancelled.code) {
    try {
      await this._run(OP.ABORT, undefined, 0, code);
    } finally {
      this.dispose();
    }
  }

  /** Gives the end up: a channel not read to its end is aborted (CANCELLED). */
  dispose() {
    if (this._ended) return;
    this._ended = true;
    this._dispose();
  }

  async next() {
    if (this._ended) return { done: true, value: undefined };
    try {
      return { done: false, value: await this.recv() };
    } catch (e) {
      this.dispose();
      if (e instanceof ChannelClosed) return this._end();
      throw e;
    }
  }

  /** Called at the end of the stream (a Stream awaits the call's outcome there). */
  async _end() {
    return { done: true, value: undefined };
  }

  async return() {
    this.dispose();
    return { done: true, value: undefined };
  }

  [Symbol.asyncIterator]() {
    return this;
  }
}

module.exports = { OP, Sender, Receiver };
