'use strict';
// Calls never block the event loop: while 2000 calls are in flight (some of them slow), a
// 5 ms interval keeps firing. A loop blocked until the calls end would fire it at most once.
const test = require('node:test');
const assert = require('node:assert/strict');
const { knit, RUST_WORKER, u64le } = require('./helpers');

test('a timer keeps firing while 2000 calls are in flight', async () => {
  const pool = await knit.pool({ workers: 2, command: [RUST_WORKER] });
  try {
    let ticks = 0;
    let pending = true;
    const timer = setInterval(() => {
      if (pending) ticks += 1;
    }, 5);
    const calls = [];
    for (let i = 0; i < 2000; i++) {
      // Every 100th call sleeps 300 ms in the worker: the batch lasts well over 300 ms.
      calls.push(i % 100 === 0 ? pool.call.sleep_ms(u64le(300)) : pool.call.echo(Buffer.alloc(64, i & 0xff)));
    }
    const started = Date.now();
    const results = await Promise.all(calls);
    pending = false;
    clearInterval(timer);
    const elapsed = Date.now() - started;
    assert.equal(results.length, 2000);
    assert.ok(results.slice(1, 100).every((r, j) => r.length === 64 && r[0] === ((j + 1) & 0xff)));
    // The slow calls alone take 300 ms x 20 / 2 workers; a free loop ticks every 5 ms of
    // that. At least 10 ticks, where a blocked loop gives 0 or 1.
    assert.ok(elapsed >= 300, `the batch took ${elapsed} ms`);
    assert.ok(ticks >= 10, `the interval fired ${ticks} times in ${elapsed} ms`);
  } finally {
    await pool.close();
  }
});

test('an idle pool does not keep the process alive, a pending call does', async () => {
  const { spawnSync } = require('node:child_process');
  const lib = require.resolve(process.env.KNIT_NODE_PACKAGE || '../lib');
  // The child starts a pool, makes one slow call without awaiting it, and lets its main
  // script end: the call keeps it alive until it settles, then the idle pool does not.
  const script = `
    const knit = require(${JSON.stringify(lib)});
    knit.pool({ command: [${JSON.stringify(RUST_WORKER)}] }).then((pool) => {
      const b = Buffer.alloc(8); b.writeBigUInt64LE(200n);
      pool.call.sleep_ms(b).then(() => console.log('settled'));
    });`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout.trim(), 'settled');
});
