'use strict';
// Checksums the test workers agree on.

const MASK = (1n << 64n) - 1n;
const PRIME = 0x100000001b3n;

/** FNV-1a over little-endian 8-byte words, then the tail bytes, xor the length (the
    `checksum` function of every Knit test worker), as 8 bytes little-endian. */
function wordChecksum(bytes) {
  // 64-bit arithmetic in two 32-bit halves (BigInt per word would be slow for 1 MiB).
  let hi = 0xcbf29ce4;
  let lo = 0x84222325;
  const mul = (h, l) => {
    // (h:l) * 0x100000001b3 mod 2^64 = (h:l) * 0x1b3 + (l << 40)
    const lLo = (l & 0xffff) * 0x1b3;
    const lHi = (l >>> 16) * 0x1b3 + Math.floor(lLo / 0x10000);
    const newLo = ((lHi & 0xffff) << 16) | (lLo & 0xffff);
    const carry = Math.floor(lHi / 0x10000);
    const newHi = (Math.imul(h, 0x1b3) + carry + (l << 8)) | 0;
    return [newHi >>> 0, newLo >>> 0];
  };
  const n = bytes.length;
  const words = Math.floor(n / 8);
  for (let i = 0; i < words; i++) {
    const wl = bytes.readUInt32LE(8 * i);
    const wh = bytes.readUInt32LE(8 * i + 4);
    [hi, lo] = mul((hi ^ wh) >>> 0, (lo ^ wl) >>> 0);
  }
  for (let i = 8 * words; i < n; i++) [hi, lo] = mul(hi, (lo ^ bytes[i]) >>> 0);
  let h = ((BigInt(hi) << 32n) | BigInt(lo)) ^ BigInt(n);
  h &= MASK;
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(h);
  return out;
}

/** The same, the slow obvious way (to check the fast one). */
function wordChecksumSlow(bytes) {
  let h = 0xcbf29ce484222325n;
  const words = Math.floor(bytes.length / 8);
  for (let i = 0; i < words; i++) h = ((h ^ bytes.readBigUInt64LE(8 * i)) * PRIME) & MASK;
  for (let i = 8 * words; i < bytes.length; i++) h = ((h ^ BigInt(bytes[i])) * PRIME) & MASK;
  h ^= BigInt(bytes.length);
  const out = Buffer.alloc(8);
  out.writeBigUInt64LE(h & MASK);
  return out;
}

module.exports = { wordChecksum, wordChecksumSlow };
