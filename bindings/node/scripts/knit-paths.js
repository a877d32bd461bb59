#!/usr/bin/env node
// Where the addon's build finds libknit (called by binding.gyp):
//   include  prints the directory of knit.h
//   lib      copies libknit into ./native (the addon's rpath: the package carries its own
//            libknit, as the Python package bundles it) and prints that directory
// libknit is looked for in KNIT_LIB (a path to libknit.so), KNIT_PREFIX (a scripts/build-c
// prefix), then the source tree's scripts/build-c output (release, then debug).
'use strict';
const fs = require('fs');
const path = require('path');

const pkg = path.resolve(__dirname, '..');
const tree = path.resolve(pkg, '..', '..');

function prefixes() {
  const out = [];
  if (process.env.KNIT_PREFIX) out.push(process.env.KNIT_PREFIX);
  const target = process.env.CARGO_TARGET_DIR || path.join(tree, 'target');
  for (const profile of ['release', 'debug']) out.push(path.join(target, 'knit-c', profile));
  return out;
}

function findLib() {
  if (process.env.KNIT_LIB) return path.resolve(process.env.KNIT_LIB);
  for (const p of prefixes()) {
    const lib = path.join(p, 'lib', 'libknit.so');
    if (fs.existsSync(lib)) return lib;
  }
  throw new Error('libknit not found: set KNIT_LIB or KNIT_PREFIX, or run scripts/build-c');
}

function findInclude() {
  const candidates = [];
  if (process.env.KNIT_PREFIX) candidates.push(path.join(process.env.KNIT_PREFIX, 'include'));
  if (process.env.KNIT_LIB) candidates.push(path.resolve(path.dirname(process.env.KNIT_LIB), '..', 'include'));
  candidates.push(path.join(tree, 'include'));
  for (const p of prefixes()) candidates.push(path.join(p, 'include'));
  for (const c of candidates) if (fs.existsSync(path.join(c, 'knit.h'))) return c;
  throw new Error('knit.h not found: set KNIT_PREFIX (a scripts/build-c prefix)');
}

const what = process.argv[2];
if (what === 'include') {
  process.stdout.write(findInclude());
} else if (what === 'lib') {
  const lib = fs.realpathSync(findLib());
  const dir = path.join(pkg, 'native');
  fs.mkdirSync(dir, { recursive: true });
  // The addon records the soname (libknit.so.0); the link step wants libknit.so.
  for (const name of ['libknit.so.0', 'libknit.so']) {
    const to = path.join(dir, name);
    fs.rmSync(to, { force: true });
    fs.copyFileSync(lib, to);
  }
  process.stdout.write(dir);
} else {
  process.stderr.write('usage: knit-paths.js include|lib\n');
  process.exit(2);
}
