#!/usr/bin/env node
'use strict';
// A Knit worker in Node.js, serving `hello` and `checksum` like examples/c/worker.c, the Rust
// test worker and the Python example worker. A host in any language starts it as a process
// worker, for example:
//
//   Rust:    Pool::builder().process(Command::new("node").arg("bindings/node/examples/worker.js"))
//   Python:  knit.Pool(["node", "bindings/node/examples/worker.js"])
//   Node.js: await knit.pool({ command: ['node', 'bindings/node/examples/worker.js'] })
//
//   hello     "World" -> "Hello, World"                           (UTF-8 text)
//   checksum  any bytes -> FNV-1a-64 over little-endian 8-byte words, then the tail bytes,
//             xor the length, as 8 little-endian bytes
const knit = require('..');

const MASK = (1n << 64n) - 1n;

function checksum(ctx) {
  const data = ctx.payload; // the request bytes, read in place (valid during this handler)
  let h = 0xcbf29ce484222325n;
  const whole = data.length - (data.length % 8);
  for (let i = 0; i < whole; i += 8) h = ((h ^ data.readBigUInt64LE(i)) * 0x100000001b3n) & MASK;
  for (let i = whole; i < data.length; i++) h = ((h ^ BigInt(data[i])) * 0x100000001b3n) & MASK;
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(h ^ BigInt(data.length));
  return out;
}

knit
  .serve({
    hello: (name) => `Hello, ${name}`,
    checksum: knit.handler(checksum, { raw: true }),
  })
  .catch((e) => {
    console.error(`worker: ${e.name}: ${e.message}`);
    process.exit(1);
  });
