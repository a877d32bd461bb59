'use strict';
// A Node.js host calling a Node.js worker process (test/node_worker.js): payloads of every
// kind, errors thrown by handlers, cancellation seen by the handler, deadlines, channels.
const test = require('node:test');
const assert = require('node:assert/strict');
const { knit, NODE_WORKER, u32le } = require('./helpers');

let pool;
test.before(async () => {
  // A small channel ring: channel tests go through backpressure.
  pool = await knit.pool({ workers: 1, command: NODE_WORKER, channelRing: 4096 });
});
test.after(() => pool.close());

const VALUES = ['text', 'ünïcödé ✓', '', { a: [1, 2, { b: null }] }, [1, 'two', false], 42, 3.5, true];
for (const v of VALUES) {
  test(`the JSON/string value ${JSON.stringify(v)} round-trips`, async () => {
    assert.deepEqual(await pool.call.roundtrip(v), v);
  });
}

test('bytes round-trip as Buffers (Buffer, Uint8Array, ArrayBuffer)', async () => {
  const b = Buffer.from([1, 2, 3, 250]);
  assert.deepEqual(await pool.call.roundtrip(b), b);
  assert.deepEqual(await pool.call.roundtrip(new Uint8Array([9, 8])), Buffer.from([9, 8]));
  assert.deepEqual(await pool.call.roundtrip(new Uint8Array([5, 6]).buffer), Buffer.from([5, 6]));
  assert.deepEqual(await pool.call.describe(b), { type: 'Buffer' });
});

test('null and no argument', async () => {
  assert.equal((await pool.call.roundtrip()).length, 0);
  assert.equal(await pool.call.roundtrip(null), null);
  assert.equal(await pool.call.roundtrip(undefined, { contentType: knit.JSON }), null);
});

test('typed arrays keep their dtype and shape', async () => {
  const cases = [
    new Float64Array([1.5, -2, 3]),
    new Float32Array([0.5, 4]),
    new Int32Array([-1, 2, 3, 4]),
    new Uint16Array([65535, 1]),
    new Int8Array([-128, 127]),
    new BigInt64Array([-5n, 1n << 62n]),
    new BigUint64Array([1n << 63n]),
  ];
  for (const a of cases) {
    const back = await pool.call.roundtrip(a);
    assert.equal(back.constructor, a.constructor);
    assert.deepEqual([...back], [...a]);
    assert.deepEqual(back.shape, [a.length]);
  }
  const m = await pool.call.roundtrip(knit.typed(new Int16Array([1, 2, 3, 4, 5, 6]), [2, 3]));
  assert.ok(m instanceof Int16Array);
  assert.deepEqual(m.shape, [2, 3]);
  assert.deepEqual(await pool.call.describe(knit.typed(new Float32Array(6), [3, 2])), { type: 'Float32Array', shape: [3, 2] });
  const doubled = await pool.call.double(new Float64Array([1, 2]));
  assert.deepEqual([...doubled], [2, 4]);
  const half = await pool.call.roundtrip(new knit.ArrayValue('float16', [2], Buffer.from([0, 60, 0, 64])));
  assert.ok(half instanceof knit.ArrayValue);
  assert.equal(half.dtype, 'float16');
  assert.deepEqual(half.shape, [2]);
  assert.deepEqual(half.data, Buffer.from([0, 60, 0, 64]));
});

test('application content types pass untouched as Payload', async () => {
  const p = await pool.call.echo(new knit.Payload(Buffer.from([0xa1, 1]), knit.CBOR));
  assert.ok(p instanceof knit.Payload);
  assert.equal(p.contentType, knit.CBOR);
  assert.deepEqual(p.data, Buffer.from([0xa1, 1]));
});

test('a malformed typed array is refused by the decoder with InvalidArgument (CT-3)', async () => {
  const bad = new knit.Payload(Buffer.from([1, 0, 1, 0, 0, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0]), knit.TYPED_ARRAY);
  await assert.rejects(pool.call.roundtrip(bad), knit.InvalidArgument);
  assert.equal(await pool.call.hello('still serving'), 'Hello, still serving');
});

test('a thrown error comes back with its message and the worker keeps serving', async () => {
  await assert.rejects(pool.call.panic(), (e) => e instanceof knit.HandlerFailed && e.message.includes('Error: worker process panicked on purpose'));
  await assert.rejects(pool.call.async_fail(), (e) => e instanceof knit.HandlerFailed && e.message.includes('TypeError: async handler failed'));
  await assert.rejects(pool.call.throw_string(), (e) => e instanceof knit.HandlerFailed && e.message.includes('a plain string'));
  assert.equal(await pool.call.hello('after'), 'Hello, after');
});

test('every error class crosses with its code', async () => {
  const classes = {
    1: knit.UnknownFunction,
    2: knit.HandlerFailed,
    3: knit.PayloadTooLarge,
    4: knit.Cancelled,
    5: knit.DeadlineExceeded,
    7: knit.Shutdown,
    8: knit.WouldBlock,
    9: knit.ChannelClosed,
    10: knit.ChannelAborted,
    11: knit.InvalidArgument,
    12: knit.OsError,
    14: knit.TimedOut,
  };
  for (const [code, cls] of Object.entries(classes)) {
    // eslint-disable-next-line no-await-in-loop
    await assert.rejects(pool.call.fail_with(Number(code)), (e) => e instanceof cls && e.code === Number(code) && e.message.includes(`failure ${code}`), `code ${code}`);
  }
  await assert.rejects(pool.call.fail_with(4242), (e) => e instanceof knit.ApplicationError && e.code === 4242 && e.name === 'APPLICATION');
});

test('errors made locally map codes to classes (CALL-7: unknown codes stay raw)', () => {
  assert.ok(knit.errorFor(6, 'x') instanceof knit.PeerDied);
  assert.ok(knit.errorFor(107, 'x') instanceof knit.Poisoned);
  assert.ok(knit.errorFor(107, 'x') instanceof knit.AttachError);
  assert.ok(knit.errorFor(200, 'x') instanceof knit.ProtocolViolation);
  const odd = knit.errorFor(70000, '?');
  assert.equal(odd.constructor, knit.KnitError);
  assert.equal(odd.code, 70000);
  assert.equal(odd.name, 'UNKNOWN');
  assert.throws(() => new knit.ApplicationError('x', 5), RangeError);
});

test('an AbortSignal reaches the handler as ctx.signal', async () => {
  const before = await pool.call.abort_count();
  const ac = new AbortController();
  const call = pool.call.wait_for_abort(null, { signal: ac.signal });
  setTimeout(() => ac.abort(), 20);
  await assert.rejects(call, knit.Cancelled);
  // The handler resolved only because it saw the abort: the worker is free and counted it.
  assert.equal(await pool.call.abort_count(), before + 1);
});

test('the handler sees the deadline', async () => {
  const left = await pool.call.time_left(null, { deadline: 5000 });
  assert.ok(left > 0 && left <= 5000, String(left));
  assert.equal(await pool.call.time_left(), null);
});

test('generator handlers stream to the caller', async () => {
  const s = pool.stream('count_to', 5);
  const got = [];
  for await (const n of s) got.push(n);
  assert.deepEqual(got, [0, 1, 2, 3, 4]);
  assert.equal(await s.result, 10);
  const p = pool.stream('progress', u32le(2));
  const texts = [];
  for await (const m of p) texts.push(m.toString());
  assert.deepEqual(texts, ['step 0 of 2', 'step 1 of 2']);
});

test('a worker channel with backpressure: the host reads 200 KiB through a 4 KiB ring', async () => {
  const s = pool.stream('flood', { n: 200, size: 1000 });
  let i = 0;
  for await (const m of s) {
    assert.equal(m.length, 1000);
    assert.equal(m[0], i & 0xff);
    i += 1;
    if (i % 50 === 0) await new Promise((r) => setTimeout(r, 5)); // a slow reader
  }
  assert.equal(i, 200);
  assert.equal(await s.result, 200);
});

test('a host channel with backpressure: send() waits for room', async () => {
  const { sender, result } = pool.callWithChannel('digest_channel');
  for (let i = 0; i < 200; i++) {
    // eslint-disable-next-line no-await-in-loop
    await sender.send(Buffer.alloc(1000, i));
  }
  await sender.close();
  assert.deepEqual(await result, { count: 200, bytes: 200000 });
  assert.equal(await pool.callWithStream('total', [1, 2, 3, 4]), 10);
  async function* numbers() {
    for (let i = 1; i <= 100; i++) yield i;
  }
  assert.equal(await pool.callWithStream('total', numbers()), 5050);
});

test('a payload view kept past its handler is detached', async () => {
  assert.equal(await pool.call.keep_payload(Buffer.alloc(64, 1)), 'kept');
  assert.equal(await pool.call.kept_length(), 0);
});

test('a host receiver that aborts stops the worker sender, and the worker keeps serving', async () => {
  const s = pool.stream('flood', { n: 100000, size: 1000 });
  const first = await s.next();
  assert.equal(first.value.length, 1000);
  await s.abort(4000);
  await assert.rejects(s.result, (e) => e instanceof knit.ChannelAborted);
  assert.equal(await pool.call.hello('after abort'), 'Hello, after abort');
});

test('trySend reports a full channel with WouldBlock; an AbortSignal cancels a stream', async () => {
  const ac = new AbortController();
  const { sender, result } = pool.callWithChannel('wait_for_abort', null, { signal: ac.signal });
  let sent = 0;
  for (;;) {
    try {
      // eslint-disable-next-line no-await-in-loop
      await sender.trySend(Buffer.alloc(1000));
      sent += 1;
    } catch (e) {
      assert.ok(e instanceof knit.WouldBlock, String(e));
      break;
    }
    assert.ok(sent < 100, 'a 4 KiB channel never filled');
  }
  assert.ok(sent >= 1);
  ac.abort();
  await assert.rejects(result, knit.Cancelled);
  await sender.abort();
  const ac2 = new AbortController();
  const s = pool.stream('flood', { n: 100000, size: 1000 }, { signal: ac2.signal });
  assert.equal((await s.next()).value.length, 1000);
  ac2.abort();
  await assert.rejects(s.result, knit.Cancelled);
  s.dispose();
  assert.equal(await pool.call.hello('after cancel'), 'Hello, after cancel');
});
