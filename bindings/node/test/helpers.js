'use strict';
// Shared by the tests: where the peers are, and small payload helpers.
const path = require('path');
const v8 = require('v8');
const vm = require('vm');

const ROOT = path.resolve(__dirname, '..', '..', '..');
const TARGET = process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target');
/** The package under test: the installed one when KNIT_NODE_PACKAGE names it. */
const knit = require(process.env.KNIT_NODE_PACKAGE || '../lib');

const RUST_WORKER = process.env.KNIT_TEST_WORKER || path.join(TARGET, 'debug', 'knit-test-worker');
const RUST_HOST = process.env.KNIT_RUST_HOST || path.join(TARGET, 'debug', 'examples', 'rust_host');
const NODE_WORKER = [process.execPath, path.join(__dirname, 'node_worker.js')];

function u64le(n) {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return b;
}

function u32le(n) {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
}

v8.setFlagsFromString('--expose-gc');
const gc = vm.runInNewContext('gc');

/** Collects garbage until libknit's live handles drop to `want` (finalizers of external
    buffers run after a collection, on later turns of the loop); returns the last count. */
async function settleHandles(want = 0) {
  let n = knit.handleCount();
  for (let i = 0; i < 100 && n > want; i++) {
    gc();
    // eslint-disable-next-line no-await-in-loop
    await new Promise((resolve) => setTimeout(resolve, 10));
    n = knit.handleCount();
  }
  return n;
}

function alive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Waits (at most `ms`) until `pid` is gone. */
async function waitGone(pid, ms = 10000) {
  const end = Date.now() + ms;
  while (alive(pid) && Date.now() < end) {
    // eslint-disable-next-line no-await-in-loop
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return !alive(pid);
}

module.exports = { knit, ROOT, TARGET, RUST_WORKER, RUST_HOST, NODE_WORKER, u64le, u32le, gc, settleHandles, waitGone, alive };
