'use strict';
// The examples: the example host runs against the Node.js example worker and the Rust test
// worker, and both answer alike.
const test = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { spawnSync } = require('node:child_process');
const { RUST_WORKER } = require('./helpers');

const EXAMPLES = path.join(process.env.KNIT_NODE_PACKAGE || path.join(__dirname, '..'), 'examples');

function host(...worker) {
  const r = spawnSync(process.execPath, [path.join(EXAMPLES, 'host.js'), ...worker], { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  return r.stdout;
}

test('the example host against the example worker and the Rust test worker', () => {
  const node = host();
  assert.match(node, /hello {4}-> Hello, World/);
  assert.match(node, /unknown {2}-> /);
  assert.equal(host(RUST_WORKER), node);
});
