'use strict';
// The module form of a worker: `node bin/knit-worker.js ./handlers.js` serves the module's
// exported functions.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { knit } = require('./helpers');

const BIN = path.join(process.env.KNIT_NODE_PACKAGE || path.join(__dirname, '..'), 'bin', 'knit-worker.js');

test('knit-worker.js serves the exports of a module', async () => {
  const pool = await knit.pool({ command: [process.execPath, BIN, path.join(__dirname, 'node_worker.js')] });
  try {
    assert.equal(await pool.call.hello('module'), 'Hello, module');
    assert.deepEqual(await pool.call.roundtrip({ a: 1 }), { a: 1 });
    await assert.rejects(pool.call.panic(), knit.HandlerFailed);
  } finally {
    await pool.close();
  }
});
