'use strict';
// JavaScript values to payloads and back, by content type (spec/09 §9.2). The transport never
// interprets a payload (CT-1); this is the binding's codec, the mirror of the Python one:
//
//   value                                  content type   sent as
//   undefined (no argument)                BYTES          empty payload
//   null                                   JSON           null
//   Buffer, Uint8Array, ArrayBuffer        BYTES          its bytes
//   string                                 UTF8           UTF-8
//   other TypedArrays, knit.typed(a,shape) TYPED_ARRAY    dtype + shape header, the elements
//   plain objects, arrays, numbers, bools  JSON           JSON text
//   new knit.Payload(data, contentType)    its own        its bytes as they are
//
// Decoding: BYTES -> Buffer, UTF8 -> string, JSON -> the value, TYPED_ARRAY -> a TypedArray
// of its dtype with a `shape` property (dtypes JavaScript has no array for: an ArrayValue),
// anything else -> a Payload. A payload its content type does not describe (bad UTF-8 or
// JSON, a typed array failing CT-2) is an InvalidArgument error (CT-3).
const { InvalidArgument } = require('./errors');

const BYTES = 0;
const UTF8 = 1;
const JSON_CT = 2;
const CBOR = 3;
const TYPED_ARRAY = 4;
const MSGPACK = 5;
const APPLICATION = 0x80000000;

/** Bytes with an explicit content type: sent as they are; what an undecoded type gives. */
class Payload {
  constructor(data, contentType = BYTES) {
    if (!Number.isInteger(contentType) || contentType < 0 || contentType > 0xffffffff) {
      throw new RangeError(`a content type is a u32, not ${contentType}`);
    }
    this.data = toBuffer(data);
    this.contentType = contentType;
  }
}

// dtype registry (spec/09 §9.2): code, name, element size, JavaScript array type.
const DTYPES = [
  [1, 'uint8', 1, Uint8Array],
  [2, 'int8', 1, Int8Array],
  [3, 'uint16', 2, Uint16Array],
  [4, 'int16', 2, Int16Array],
  [5, 'uint32', 4, Uint32Array],
  [6, 'int32', 4, Int32Array],
  [7, 'uint64', 8, BigUint64Array],
  [8, 'int64', 8, BigInt64Array],
  [9, 'float16', 2, null],
  [10, 'float32', 4, Float32Array],
  [11, 'float64', 8, Float64Array],
  [12, 'bfloat16', 2, null],
  [13, 'bool', 1, null],
].map(([code, name, size, Array]) => ({ code, name, size, Array }));
const BY_CODE = new Map(DTYPES.map((d) => [d.code, d]));
const BY_NAME = new Map(DTYPES.map((d) => [d.name, d]));
const BY_ARRAY = new Map(DTYPES.filter((d) => d.Array).map((d) => [d.Array, d]));
BY_ARRAY.set(Uint8ClampedArray, BY_CODE.get(1));
const MAX_NDIM = 32;
const LITTLE = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

/** A typed array of a dtype JavaScript has no array type for (float16, bfloat16, bool), or
    any typed array with an explicit shape: `dtype` name, `shape`, element bytes `data`. */
class ArrayValue {
  constructor(dtype, shape, data) {
    if (!BY_NAME.has(dtype)) throw new TypeError(`unknown dtype ${dtype}`);
    this.dtype = dtype;
    this.shape = shape.map(Number);
    this.data = toBuffer(data);
  }
}

/** A TypedArray sent with a shape (C order): `knit.typed(new Float32Array(6), [2, 3])`. */
function typed(array, shape) {
  const d = BY_ARRAY.get(array.constructor);
  if (!d) throw new TypeError('typed() wants a TypedArray');
  const count = shape.reduce((a, b) => a * b, 1);
  if (count !== array.length) throw new RangeError(`shape [${shape}] holds ${count} elements, not ${array.length}`);
  return new ArrayValue(d.name, shape, array);
}

function toBuffer(data) {
  if (Buffer.isBuffer(data)) return data;
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (data instanceof ArrayBuffer || data instanceof SharedArrayBuffer) return Buffer.from(data);
  if (typeof data === 'string') return Buffer.from(data, 'utf8');
  throw new TypeError('bytes are a Buffer, TypedArray, ArrayBuffer or string');
}

function header(code, shape) {
  if (shape.length > MAX_NDIM) throw new RangeError(`a typed array has at most ${MAX_NDIM} dimensions`);
  const h = Buffer.alloc(8 + 8 * shape.length);
  h.writeUInt16LE(code, 0);
  h.writeUInt16LE(shape.length, 2);
  shape.forEach((n, i) => h.writeBigUInt64LE(BigInt(n), 8 + 8 * i));
  return h;
}

function arrayPayload(code, shape, bytes) {
  if (!LITTLE) throw new TypeError('typed arrays need a little-endian machine');
  return Buffer.concat([header(code, shape), bytes]);
}

function json(value) {
  let text;
  try {
    text = JSON.stringify(value);
  } catch (e) {
    throw new TypeError(`cannot send ${typeof value} as JSON: ${e.message}`);
  }
  if (text === undefined) throw new TypeError(`cannot send ${typeof value} as JSON`);
  return Buffer.from(text, 'utf8');
}

const EMPTY = Buffer.alloc(0);

/** Encodes `value` as `{data, contentType}`; `contentType` tags bytes or a string with
    another type, or (JSON) asks for JSON of any value. */
function encode(value, contentType) {
  if (contentType !== undefined && (!Number.isInteger(contentType) || contentType < 0 || contentType > 0xffffffff)) {
    throw new RangeError(`a content type is a u32, not ${contentType}`);
  }
  if (contentType === JSON_CT && !ArrayBuffer.isView(value) && !(value instanceof ArrayBuffer)) {
    return { data: json(value === undefined ? null : value), contentType: JSON_CT };
  }
  if (value === undefined) return { data: EMPTY, contentType: contentType ?? BYTES };
  if (value === null) return { data: json(null), contentType: JSON_CT };
  if (typeof value === 'string') return { data: Buffer.from(value, 'utf8'), contentType: contentType ?? UTF8 };
  if (value instanceof Payload) return { data: value.data, contentType: contentType ?? value.contentType };
  if (Buffer.isBuffer(value) || value instanceof Uint8Array || value instanceof ArrayBuffer) {
    return { data: value, contentType: contentType ?? BYTES };
  }
  if (value instanceof ArrayValue) {
    return { data: arrayPayload(BY_NAME.get(value.dtype).code, value.shape, value.data), contentType: TYPED_ARRAY };
  }
  if (ArrayBuffer.isView(value)) {
    const d = value instanceof DataView ? null : BY_ARRAY.get(value.constructor);
    if (!d || contentType !== undefined) return { data: toBuffer(value), contentType: contentType ?? BYTES };
    // A decoded array keeps its shape (a non-enumerable `shape`); others are one-dimensional.
    const shape = Array.isArray(value.shape) && value.shape.reduce((a, b) => a * b, 1) === value.length ? value.shape : [value.length];
    return { data: arrayPayload(d.code, shape, toBuffer(value)), contentType: TYPED_ARRAY };
  }
  if (typeof value === 'bigint') throw new TypeError('cannot send a bigint as JSON');
  return { data: json(value), contentType: contentType ?? JSON_CT };
}

/** Validates a typed-array payload (CT-2): {dtype, shape, offset}; InvalidArgument (CT-3). */
function parseTypedArray(buf) {
  if (buf.length < 8) throw new InvalidArgument(`typed array: ${buf.length} bytes, shorter than its 8-byte header`);
  const code = buf.readUInt16LE(0);
  const ndim = buf.readUInt16LE(2);
  const d = BY_CODE.get(code);
  if (!d) throw new InvalidArgument(`typed array: dtype ${code} is not in the registry (1 to 13)`);
  if (ndim > MAX_NDIM) throw new InvalidArgument(`typed array: ndim ${ndim} exceeds ${MAX_NDIM}`);
  const offset = 8 + 8 * ndim;
  if (buf.length < offset) throw new InvalidArgument(`typed array: ${buf.length} bytes cannot hold ${ndim} dimensions`);
  const shape = [];
  let count = 1n;
  for (let i = 0; i < ndim; i++) {
    const n = buf.readBigUInt64LE(8 + 8 * i);
    shape.push(n);
    count *= n;
    if (count >= 1n << 64n) throw new InvalidArgument(`typed array: the product of shape [${shape}] overflows 64 bits`);
  }
  const want = count * BigInt(d.size);
  const have = BigInt(buf.length - offset);
  if (want !== have) {
    throw new InvalidArgument(`typed array: shape [${shape}] of ${d.name} needs ${want} element bytes, found ${have}`);
  }
  return { dtype: d, shape, offset };
}

function decodeTypedArray(buf) {
  const { dtype, shape, offset } = parseTypedArray(buf);
  const dims = shape.map(Number);
  const body = buf.subarray(offset);
  if (!dtype.Array || !LITTLE) return new ArrayValue(dtype.name, dims, body);
  let arr;
  if ((body.byteOffset % dtype.size) === 0) {
    arr = new dtype.Array(body.buffer, body.byteOffset, body.length / dtype.size);
  } else {
    // Misaligned elements: a copy (a TypedArray view must be aligned).
    const copy = new Uint8Array(body);
    arr = new dtype.Array(copy.buffer, 0, copy.length / dtype.size);
  }
  Object.defineProperty(arr, 'shape', { value: dims, enumerable: false });
  return arr;
}

/** Decodes a received payload (a Buffer) by its content type. */
function decode(data, contentType) {
  switch (contentType) {
    case BYTES:
      return data;
    case UTF8: {
      try {
        return new TextDecoder('utf-8', { fatal: true }).decode(data);
      } catch (e) {
        throw new InvalidArgument(`a payload tagged UTF8 is not UTF-8: ${e.message}`);
      }
    }
    case JSON_CT: {
      try {
        return JSON.parse(data.toString('utf8'));
      } catch (e) {
        throw new InvalidArgument(`a payload tagged JSON is not JSON: ${e.message}`);
      }
    }
    case TYPED_ARRAY:
      return decodeTypedArray(data);
    default:
      return new Payload(data, contentType);
  }
}

module.exports = {
  BYTES,
  UTF8,
  JSON: JSON_CT,
  CBOR,
  TYPED_ARRAY,
  MSGPACK,
  APPLICATION,
  Payload,
  ArrayValue,
  typed,
  encode,
  decode,
  parseTypedArray,
  DTYPES,
};
