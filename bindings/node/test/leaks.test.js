'use strict';
// No handle leaks: after calls, streams, channels and loans, a closed pool and collected
// responses leave no live libknit handle; the module's ready state is reported.
const test = require('node:test');
const assert = require('node:assert/strict');
const { knit, RUST_WORKER, u32le, settleHandles } = require('./helpers');

// In a function of its own: a suspended async frame keeps its last values (a message) alive.
async function work(pool) {
  for (let i = 0; i < 50; i++) {
    // eslint-disable-next-line no-await-in-loop
    await pool.call.echo(Buffer.alloc(100, i));
  }
  await assert.rejects(pool.call.nope(), knit.UnknownFunction);
  for await (const m of pool.stream('progress', u32le(3))) assert.ok(m.length > 0);
  await pool.callWithStream('digest', [Buffer.alloc(10), Buffer.alloc(20)]);
  await pool.callLoan('checksum', 64, (v) => v.fill(1));
  const broken = pool.stream('progress', u32le(100));
  for await (const m of broken) {
    assert.ok(m.length > 0);
    break; // gives the receiver up: the channel is aborted, the handle freed
  }
  await broken.result.catch(() => {});
}

test('no handle leaks', async () => {
  assert.equal(await settleHandles(0), 0);
  const pool = await knit.pool({ workers: 2, command: [RUST_WORKER] });
  assert.ok(knit.handleCount() > 0);
  await work(pool);
  await pool.close();
  assert.equal(await settleHandles(0), 0);
});
