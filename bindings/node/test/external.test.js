'use strict';
// A pool of external workers: the test starts a Node worker process itself; it attaches by
// the region's name and its index, serves, and leaves cleanly (exit 0: serve() resolved) when
// the host releases it with SHUTDOWN.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const { knit, NODE_WORKER } = require('./helpers');

test('an external Node worker attaches, serves, and leaves on SHUTDOWN with serve() resolved', async () => {
  const pool = await knit.pool({ external: true, workers: 1 });
  try {
    const { name } = pool.info();
    const child = spawn(NODE_WORKER[0], NODE_WORKER.slice(1), {
      env: { ...process.env, KNIT_REGION: name, KNIT_SLOT: '1' },
      stdio: ['ignore', 'inherit', 'inherit'],
    });
    const exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
    const functions = await pool.waitWorker(1, 10000);
    assert.ok(functions.includes('hello') && functions.includes('echo'), String(functions));
    assert.equal(await pool.call.hello('external', { worker: 1 }), 'Hello, external');
    await assert.rejects(pool.call.hello('x', { worker: 2 }), knit.InvalidArgument);
    const entry = await pool.releaseWorker(1, 10000);
    assert.equal(entry.state, 4); // DETACHED
    assert.equal(await exited, 0);
    assert.equal(pool.reserveWorker(1), 2); // a new epoch for the next worker
  } finally {
    await pool.close();
  }
});
