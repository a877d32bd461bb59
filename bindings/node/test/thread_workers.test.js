'use strict';
// Thread workers: a pool whose workers are threads of this process running JavaScript
// handlers on this event loop (knit_config_set_threads).
const test = require('node:test');
const assert = require('node:assert/strict');
const { knit } = require('./helpers');

test('thread workers serve JavaScript handlers, errors and cancellation included', async () => {
  let sawAbort = 0;
  const pool = await knit.pool({
    workers: 2,
    handlers: {
      hello: (name) => `Hello, ${name}`,
      fail: () => {
        throw new knit.ApplicationError('mine', 4321);
      },
      wait: (_v, ctx) =>
        new Promise((resolve) => {
          ctx.signal.addEventListener('abort', () => {
            sawAbort += 1;
            resolve('aborted');
          });
        }),
      count: function* count(n) {
        for (let i = 0; i < n; i++) yield i;
        return 'done';
      },
    },
  });
  try {
    const many = await Promise.all(Array.from({ length: 300 }, (_, i) => pool.call.hello(String(i))));
    assert.equal(many[299], 'Hello, 299');
    await assert.rejects(pool.call.fail(), (e) => e instanceof knit.ApplicationError && e.code === 4321);
    const ac = new AbortController();
    const waiting = pool.call.wait(null, { signal: ac.signal });
    setTimeout(() => ac.abort(), 20);
    await assert.rejects(waiting, knit.Cancelled);
    for (let i = 0; i < 200 && sawAbort === 0; i++) {
      // eslint-disable-next-line no-await-in-loop
      await new Promise((r) => setTimeout(r, 5));
    }
    assert.equal(sawAbort, 1);
    const s = pool.stream('count', 3);
    const got = [];
    for await (const n of s) got.push(n);
    assert.deepEqual(got, [0, 1, 2]);
    assert.equal(await s.result, 'done');
    assert.equal(pool.workers()[0].pid, 0);
  } finally {
    await pool.close();
  }
});
