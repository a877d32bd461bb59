#!/usr/bin/env node
'use strict';
// A Knit host in Node.js calling a worker of any language: by default the Node.js example
// worker next to this file; give another command to call it instead, for example the Rust
// test worker (target/debug/knit-test-worker) or the Python example worker.
//
//   node bindings/node/examples/host.js [WORKER COMMAND...]
const path = require('path');
const knit = require('..');

async function main() {
  const argv = process.argv.slice(2);
  const command = argv.length ? argv : [process.execPath, path.join(__dirname, 'worker.js')];
  const pool = await knit.pool({ command, workers: 2 });
  try {
    console.log('hello    ->', await pool.call.hello('World'));
    const data = Buffer.alloc(1 << 20);
    for (let i = 0; i < data.length; i++) data[i] = i & 0xff;
    const sum = await pool.call.checksum(data);
    console.log('checksum ->', Buffer.from(sum).reverse().toString('hex'), `(${data.length} bytes in)`);
    try {
      await pool.call('no-such-function');
    } catch (e) {
      if (!(e instanceof knit.UnknownFunction)) throw e;
      console.log('unknown  ->', e.message);
    }
    console.log('parallel ->', await Promise.all([0, 1, 2].map((i) => pool.call.hello(String(i)))));
  } finally {
    await pool.close();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
