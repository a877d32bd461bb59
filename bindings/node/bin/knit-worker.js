#!/usr/bin/env node
'use strict';
// Serves the exported functions of a module as a Knit worker process:
//   node bindings/node/bin/knit-worker.js ./handlers.js
// (started by a host, which gives KNIT_REGION / KNIT_SLOT or --knit-region / --knit-slot).
// Exits 0 when the host shuts the pool down, 1 when the worker ends otherwise (host death).
const path = require('path');
const knit = require('../lib');

const file = process.argv.slice(2).find((a) => !a.startsWith('--'));
if (!file) {
  process.stderr.write('usage: knit-worker.js MODULE [--knit-region NAME --knit-slot N]\n');
  process.exit(2);
}
// eslint-disable-next-line import/no-dynamic-require
const mod = require(path.resolve(file));
const exported = mod && mod.default && typeof mod.default === 'object' ? mod.default : mod;
const handlers = Object.fromEntries(
  Object.entries(exported).filter(([, v]) => typeof v === 'function' || (v && typeof v === 'object' && v.fn)),
);
knit.serve(handlers).then(
  () => process.exit(0),
  (e) => {
    process.stderr.write(`knit-worker: ${e.name}: ${e.message}\n`);
    process.exit(1);
  },
);
