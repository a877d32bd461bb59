'use strict';
// A Rust host (knit-ffi/examples/rust_host.rs) driving the Node.js test worker: every check it
// makes of a Knit test worker passes.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawnSync } = require('node:child_process');
const { RUST_HOST, NODE_WORKER } = require('./helpers');

test('the Rust host checks the Node worker', () => {
  const run = spawnSync(RUST_HOST, NODE_WORKER, { encoding: 'utf8', timeout: 300000 });
  const lines = run.stdout.split('\n');
  assert.deepEqual(lines.filter((l) => l.startsWith('FAIL')), [], run.stdout + run.stderr);
  assert.equal(run.status, 0, run.stdout + run.stderr);
  for (const check of ['PASS hello', 'PASS echo 1048576 bytes', 'PASS handler failure crosses with its message', 'PASS cancellation', 'PASS peer death', 'PASS restarted worker answers']) {
    assert.ok(lines.includes(check), `${check} missing:\n${run.stdout}`);
  }
});
