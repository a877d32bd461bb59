'use strict';
// A Node.js host calling the Rust test worker (knit/src/bin/knit-test-worker.rs).
const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const { knit, RUST_WORKER, u64le, u32le } = require('./helpers');
const { wordChecksum } = require('./checks');

let pool;
test.before(async () => {
  pool = await knit.pool({ workers: 2, command: [RUST_WORKER] });
});
test.after(() => pool.close());

test('hello in both call forms', async () => {
  assert.equal(await pool.call.hello('World!'), 'Hello, World!');
  assert.equal(await pool.call('hello', 'World!'), 'Hello, World!');
});

for (const len of [0, 1, 4095, 4096, 131073, 1 << 20]) {
  test(`echo and checksum of ${len} bytes`, async () => {
    const data = crypto.randomBytes(len);
    const echo = await pool.call.echo(data);
    assert.ok(Buffer.isBuffer(echo));
    assert.ok(echo.equals(data));
    assert.ok((await pool.call.checksum(data)).equals(wordChecksum(data)));
  });
}

test('the raw form gives the bytes and the content type', async () => {
  const r = await pool.callRaw('echo', 'text');
  assert.equal(r.contentType, knit.UTF8);
  assert.equal(r.data.toString(), 'text');
  const j = await pool.callRaw('echo', { a: [1, 2] });
  assert.equal(j.contentType, knit.JSON);
  assert.deepEqual(JSON.parse(j.data.toString()), { a: [1, 2] });
});

test('an unknown function is UnknownFunction', async () => {
  await assert.rejects(pool.call.nope('x'), (e) => e instanceof knit.UnknownFunction && e.code === 1 && e.name === 'UNKNOWN_FUNCTION');
});

test('a panic crosses with its message', async () => {
  await assert.rejects(pool.call.panic(), (e) => e instanceof knit.HandlerFailed && e.message.includes('panicked on purpose'));
});

test('a deadline fails the call with DeadlineExceeded', async () => {
  await assert.rejects(pool.call.sleep_ms(u64le(2000), { deadline: 20 }), knit.DeadlineExceeded);
});

test('an AbortSignal cancels the call and the worker sees it', async () => {
  const ac = new AbortController();
  const call = pool.call.sleep_until_cancelled(u64le(10000), { signal: ac.signal });
  setTimeout(() => ac.abort(), 30);
  await assert.rejects(call, knit.Cancelled);
  // The worker stopped early (it polls its cancel entry): the next calls are answered.
  assert.equal(await pool.call.hello('again', { deadline: 5000 }), 'Hello, again');
  const aborted = new AbortController();
  aborted.abort();
  await assert.rejects(pool.call.hello('x', { signal: aborted.signal }), knit.Cancelled);
});

test('a stream from a Rust handler, as an async iterator', async () => {
  const s = pool.stream('progress', u32le(4));
  const got = [];
  for await (const m of s) got.push(m.toString());
  assert.deepEqual(got, ['step 0 of 4', 'step 1 of 4', 'step 2 of 4', 'step 3 of 4']);
  assert.equal((await s.result).length, 0);
});

test('a channel to a Rust handler, with backpressure', async () => {
  const messages = Array.from({ length: 300 }, (_, i) => Buffer.alloc(1000, i & 0xff));
  const r = await pool.callWithStream('digest', messages);
  assert.equal(r.readBigUInt64LE(0), 300n);
  assert.equal(r.readBigUInt64LE(8), 300000n);
});

test('a loan writes the request in place and the view is detached after fill', async () => {
  const data = crypto.randomBytes(4096);
  let view;
  const sum = await pool.callLoan('checksum', data.length, (v) => {
    view = v;
    assert.equal(v.length, data.length);
    v.set(data);
  });
  assert.ok(sum.equals(wordChecksum(data)));
  assert.equal(view.length, 0);
  assert.equal(view.buffer.byteLength, 0);
  assert.throws(() => view.buffer.slice(0), TypeError);
});

test('a loan larger than one ring record is refused before fill runs', async () => {
  let called = false;
  await assert.rejects(
    pool.callLoan('checksum', 1 << 20, () => {
      called = true;
    }),
    knit.InvalidArgument,
  );
  assert.equal(called, false);
});

test('a loan whose fill throws rethrows and sends nothing usable', async () => {
  await assert.rejects(pool.callLoan('checksum', 8, () => { throw new Error("no"); }), /no/);
  assert.equal(await pool.call.hello('after', { deadline: 5000 }), 'Hello, after');
});

test('inspection: workers and region', () => {
  const w = pool.workers();
  assert.equal(w.length, 2);
  assert.ok(w.every((x) => x.ready && !x.dead && x.pid > 0 && x.starts === 1));
  const info = pool.info();
  assert.match(info.name, /^knit-[0-9a-f]{32}$/);
  assert.equal(info.workerSlots, 2);
  assert.equal(info.poisonCode, 0);
});

test('a pool that cannot start says why', async () => {
  await assert.rejects(knit.pool({ command: ['/nonexistent/worker'], startTimeout: 2000 }), knit.KnitError);
});

test('a closed pool refuses calls with Shutdown', async () => {
  const p = await knit.pool({ command: [RUST_WORKER] });
  await p.close();
  await assert.rejects(p.call.hello('x'), knit.Shutdown);
  await p.close(); // idempotent
});
