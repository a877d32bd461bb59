'use strict';
// A Knit worker process in Node.js for the tests: the functions every Knit test worker serves
// (hello, echo, checksum, pid, panic, exit, sleep_ms, sleep_until_cancelled, progress), so
// the Rust host example (knit-ffi/examples/rust_host.rs) can drive it, plus Node-specific ones.
const knit = require(process.env.KNIT_NODE_PACKAGE || '../lib');
const { wordChecksum } = require('./checks');

let aborts = 0;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

function u64(buf, what) {
  if (!buf || buf.length !== 8) throw new Error(`want 8 bytes (${what})`);
  return Number(buf.readBigUInt64LE(0));
}

function u64le(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

const handlers = {
  hello: (name) => `Hello, ${name}`,
  // The request's own bytes and content type, whatever they are.
  echo: knit.handler((ctx) => new knit.Payload(Buffer.from(ctx.payload), ctx.contentType), { raw: true }),
  checksum: knit.handler((ctx) => wordChecksum(ctx.payload), { raw: true }),
  pid: () => {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(process.pid);
    return b;
  },
  panic: () => {
    throw new Error('worker process panicked on purpose');
  },
  exit: () => process.exit(7),
  sleep_ms: async (data) => {
    await sleep(u64(data, 'u64 milliseconds'));
  },
  // Polls the cancel flag (ctx.signal) every millisecond, like the Rust test worker.
  sleep_until_cancelled: async (data, ctx) => {
    const limit = u64(data, 'u64 milliseconds');
    for (let i = 0; i < limit; i++) {
      if (ctx.signal.aborted) throw new knit.Cancelled('saw the cancel entry');
      // eslint-disable-next-line no-await-in-loop
      await sleep(1);
    }
    return Buffer.from('not cancelled');
  },
  progress: function* progress(data) {
    const n = data.readUInt32LE(0);
    for (let i = 0; i < n; i++) yield Buffer.from(`step ${i} of ${n}`);
    return Buffer.alloc(0);
  },

  // --- Node-specific ------------------------------------------------------------------------
  describe: (value) => ({
    type: value === null ? 'null' : Buffer.isBuffer(value) ? 'Buffer' : value.constructor ? value.constructor.name : typeof value,
    shape: value && value.shape ? value.shape : undefined,
  }),
  roundtrip: (value) => value,
  double: (array) => array.map((x) => x * 2),
  fail_with: (code) => {
    if (code >= 1000) throw new knit.ApplicationError(`application failure ${code}`, code);
    throw knit.errorFor(code, `failure ${code}`);
  },
  throw_string: () => {
    // eslint-disable-next-line no-throw-literal
    throw 'a plain string';
  },
  async_fail: async () => {
    await sleep(1);
    throw new TypeError('async handler failed');
  },
  time_left: (_v, ctx) => ctx.timeLeft(),
  count_to: async function* countTo(n) {
    let total = 0;
    for (let i = 0; i < n; i++) {
      total += i;
      yield i;
    }
    return total;
  },
  // Sums the JSON numbers the host streams on its channel.
  total: async (_v, ctx) => {
    let sum = 0;
    for await (const n of await ctx.takeChannel()) sum += n;
    return sum;
  },
  // The FNV-1a of every byte of the host's channel, and the message count.
  digest_channel: async (_v, ctx) => {
    const rx = await ctx.takeChannel();
    let count = 0;
    let bytes = 0;
    for await (const m of rx) {
      count += 1;
      bytes += m.length;
    }
    return { count, bytes };
  },
  // Waits until the caller cancels (ctx.signal) and counts it; abort_count tells.
  wait_for_abort: (_v, ctx) =>
    new Promise((resolve) => {
      ctx.signal.addEventListener(
        'abort',
        () => {
          aborts += 1;
          resolve('saw the abort');
        },
        { once: true },
      );
    }),
  abort_count: () => aborts,
  // Sends `n` messages of `size` bytes: with a small channel ring the host's reading paces it.
  flood: knit.handler(
    async (ctx) => {
      const { n, size } = ctx.value();
      const tx = await ctx.openChannel();
      for (let i = 0; i < n; i++) {
        // eslint-disable-next-line no-await-in-loop
        await tx.send(Buffer.alloc(size, i & 0xff));
      }
      await tx.close();
      return n;
    },
    { raw: true, streaming: true },
  ),
  // Keeps the payload view past the handler: it must be detached afterwards.
  keep_payload: knit.handler(
    (ctx) => {
      handlers.kept = ctx.payload;
      return 'kept';
    },
    { raw: true },
  ),
  kept_length: () => (handlers.kept ? handlers.kept.length : -1),
  u64le: (n) => u64le(n),
};

module.exports = handlers;

if (require.main === module) {
  knit.serve(handlers).then(
    () => process.exit(0),
    (e) => {
      process.stderr.write(`node_worker: ${e.name}: ${e.message}\n`);
      process.exit(1);
    },
  );
}
