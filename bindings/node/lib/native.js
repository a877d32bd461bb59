'use strict';
// Loads the addon this package built (build/Release/knit_addon.node, linked with an rpath to
// the libknit copy in ../native) and checks the C ABI version.
const path = require('path');

const file = process.env.KNIT_NODE_ADDON || path.join(__dirname, '..', 'build', 'Release', 'knit_addon.node');
// eslint-disable-next-line import/no-dynamic-require
const native = require(file);

const version = native.versionNumber();
const major = version >> 16;
const minor = (version >> 8) & 0xff;
if (major !== 0 || minor < 1) {
  throw new Error(`knit: libknit ${native.version()} does not match this binding (wants 0.x, x >= 1)`);
}

/** Where the addon was loaded from (tests check that an installed package loads its own). */
native.path = file;
module.exports = native;
