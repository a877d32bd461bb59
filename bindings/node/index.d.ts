// Type declarations of the `knit` package (Knit for Node.js). Hand-written; checked by
// `tsc --noEmit` on test/types.ts (scripts/test-node).

/// <reference types="node" />

/** Content types (spec/09 §9.2). */
export const BYTES: 0;
export const UTF8: 1;
export const JSON: 2;
export const CBOR: 3;
export const TYPED_ARRAY: 4;
export const MSGPACK: 5;
export const APPLICATION: 0x80000000;

/** Bytes with an explicit content type; what an undecoded content type comes back as. */
export class Payload {
  constructor(data: Buffer | ArrayBufferView | ArrayBuffer | string, contentType?: number);
  readonly data: Buffer;
  readonly contentType: number;
}

export type DType =
  | 'uint8' | 'int8' | 'uint16' | 'int16' | 'uint32' | 'int32' | 'uint64' | 'int64'
  | 'float16' | 'float32' | 'float64' | 'bfloat16' | 'bool';

/** A typed array with its dtype and shape (for dtypes JavaScript has no array for). */
export class ArrayValue {
  constructor(dtype: DType, shape: number[], data: Buffer | ArrayBufferView | ArrayBuffer);
  readonly dtype: DType;
  readonly shape: number[];
  readonly data: Buffer;
}

export type NumericArray =
  | Int8Array | Uint8ClampedArray | Int16Array | Uint16Array | Int32Array | Uint32Array
  | Float32Array | Float64Array | BigInt64Array | BigUint64Array;

/** A decoded typed array: its elements, with the shape it was sent with. */
export type ShapedArray = NumericArray & { readonly shape: number[] };

/** A TypedArray sent with a shape (C order). */
export function typed(array: NumericArray, shape: number[]): ArrayValue;

export type JsonValue = null | boolean | number | string | JsonValue[] | { [key: string]: JsonValue };

/** What can be sent: bytes, text, typed arrays, JSON-able values, explicit payloads. */
export type Value =
  | undefined
  | Buffer | Uint8Array | ArrayBuffer | NumericArray | ArrayValue | Payload
  | JsonValue | { [key: string]: unknown } | unknown[];

/** What a result decodes to, by content type. */
export type Decoded = Buffer | string | JsonValue | ShapedArray | ArrayValue | Payload;

export function encode(value: Value, contentType?: number): { data: Buffer | Uint8Array | ArrayBuffer; contentType: number };
export function decode(data: Buffer, contentType: number): Decoded;

/** Every failure: `code` (registry or application code), `name` (its registry name). */
export class KnitError extends Error {
  constructor(message?: string, code?: number);
  readonly code: number;
  /** `"PEER_DIED"`, ...; `"APPLICATION"` or `"UNKNOWN"` outside the registry. */
  readonly name: string;
  static readonly code: number | undefined;
}
export class AttachError extends KnitError {}
export class ProtocolViolation extends KnitError {}
export class ApplicationError extends KnitError {
  constructor(message: string, code: number);
}
export class UnknownFunction extends KnitError {}
export class HandlerFailed extends KnitError {}
export class PayloadTooLarge extends KnitError {}
export class Cancelled extends KnitError {}
export class DeadlineExceeded extends KnitError {}
export class PeerDied extends KnitError {}
export class Shutdown extends KnitError {}
export class WouldBlock extends KnitError {}
export class ChannelClosed extends KnitError {}
export class ChannelAborted extends KnitError {}
export class InvalidArgument extends KnitError {}
export class OsError extends KnitError {}
export class SlotTaken extends KnitError {}
export class TimedOut extends KnitError {}
export class BadMagic extends AttachError {}
export class UnsupportedVersion extends AttachError {}
export class MissingFeature extends AttachError {}
export class BadChecksum extends AttachError {}
export class BadLayout extends AttachError {}
export class RegionTooSmall extends AttachError {}
export class NotReady extends AttachError {}
export class Poisoned extends AttachError {}
export class BadPosition extends ProtocolViolation {}
export class BadRecordLength extends ProtocolViolation {}
export class BadPadding extends ProtocolViolation {}
export class UnknownRecord extends ProtocolViolation {}
export class BadFragment extends ProtocolViolation {}
export class UnknownRequest extends ProtocolViolation {}
export class BadRecord extends ProtocolViolation {}
export class BadParticipant extends ProtocolViolation {}
export class BadChannel extends ProtocolViolation {}
/** The error class of a code, with a message. */
export function errorFor(code: number, message: string): KnitError;

export interface PoolOptions {
  /** The worker program and its arguments (any language; KNIT_REGION / KNIT_SLOT are set). */
  command?: string | string[];
  /** Instead of `command`: thread workers of this process whose handlers run on this event
      loop (for tests and tools; worker processes are the normal case). */
  handlers?: Record<string, HandlerFunction | Handler> | Map<string, HandlerFunction | Handler>;
  /** Instead of `command`: start no workers; others attach by the region's name and their
      index (KNIT_REGION / KNIT_SLOT), see waitWorker. */
  external?: boolean;
  /** Number of worker processes (default 1). */
  workers?: number;
  /** Environment variables added for the workers. */
  env?: Record<string, string>;
  /** Default deadline of every call, in ms. */
  deadline?: number;
  /** Start a dead worker again. */
  restart?: boolean;
  /** How waiting threads spin before they park. */
  spin?: 'balanced' | 'lowest-latency' | 'none' | number;
  /** ms a lone call polls for its outcome on the event loop before it leaves it to
      libknit's thread (default 0.02; 0 with spin 'none', 0.1 with 'lowest-latency'). */
  callSpin?: number;
  /** Bytes of each request and response ring (powers of two), or [request, response]. */
  ringSize?: number | [number, number];
  /** Channel slots (default 8; 0 for none) and bytes of each channel ring (default 64 KiB). */
  channels?: number;
  channelRing?: number;
  /** Calls in flight per worker (default 256); more wait in the pool's queue. */
  inflight?: number;
  maxMessageLen?: number;
  /** A full request ring: wait for room (default) or fail with WouldBlock. */
  backpressure?: 'wait' | 'error';
  /** ms a worker may take to be ready (default 5000) / to leave at close (default 2000). */
  startTimeout?: number;
  shutdownTimeout?: number;
}

export interface CallOptions {
  /** Deadline in ms from now (DeadlineExceeded after it; the worker is told). */
  deadline?: number;
  /** Cancels the call (Cancelled; the worker's ctx.signal is aborted). */
  signal?: AbortSignal;
  /** Tags the payload with another content type (or JSON of any value). */
  contentType?: number;
  /** Pins the call to worker `worker` (1 or more) instead of the least busy one. */
  worker?: number;
}

export interface RawResult {
  /** The result bytes: the response's own memory (no copy). */
  data: Buffer;
  contentType: number;
}

export interface WorkerState {
  index: number;
  pid: number;
  ready: boolean;
  dead: boolean;
  outstanding: number;
  starts: number;
}

export interface RegionInfo {
  name: string;
  major: number;
  minor: number;
  workerSlots: number;
  channelSlots: number;
  inflightMax: number;
  requestRingCap: number;
  responseRingCap: number;
  channelRingCap: number;
  poisonCode: number;
  /** Participant index + 1 of who found the violation; 0 when unknown or healthy. */
  poisonedBy: number;
  regionLen: number;
  maxMessageLen: number;
}

export interface ParticipantState {
  index: number;
  /** 0 EMPTY, 1 RESERVED, 2 ATTACHING, 3 ACTIVE, 4 DETACHED, 5 DEAD. */
  state: number;
  role: number;
  pid: number;
  epoch: number;
}

/** `pool.call(name, value)` and `pool.call.name(value)`. */
export type CallFunction = ((name: string, value?: Value, options?: CallOptions) => Promise<any>) & {
  [name: string]: (value?: Value, options?: CallOptions) => Promise<any>;
};

/** The writing end of a channel. */
export class Sender {
  /** Settles once the message is in the channel (waits while it is full: backpressure). */
  send(value: Value, options?: { contentType?: number }): Promise<void>;
  /** Rejects with WouldBlock when the channel is full now. */
  trySend(bytes: Buffer | Uint8Array | ArrayBuffer): Promise<void>;
  close(): Promise<void>;
  abort(code?: number): Promise<void>;
}

/** The reading end of a channel: an async iterator of decoded messages. */
export class Receiver implements AsyncIterableIterator<any> {
  recv(): Promise<any>;
  recvRaw(): Promise<RawResult>;
  abort(code?: number): Promise<void>;
  dispose(): void;
  next(): Promise<IteratorResult<any>>;
  return(): Promise<IteratorResult<any>>;
  [Symbol.asyncIterator](): AsyncIterableIterator<any>;
}

/** A call whose handler streams messages back. */
export class Stream extends Receiver {
  readonly result: Promise<any>;
  cancel(): void;
}

export class Pool {
  static start(options: PoolOptions): Promise<Pool>;
  readonly call: CallFunction;
  callRaw(name: string, value?: Value, options?: CallOptions): Promise<RawResult>;
  /** Writes the request in place: `fill(view)` runs synchronously; the view is detached after. */
  callLoan(name: string, length: number, fill: (view: Uint8Array) => void, options?: CallOptions & { raw?: boolean }): Promise<any>;
  stream(name: string, value?: Value, options?: CallOptions): Stream;
  callWithChannel(name: string, value?: Value, options?: CallOptions): { sender: Sender; result: Promise<any>; cancel(): void };
  callWithStream(name: string, messages: Iterable<Value> | AsyncIterable<Value>, value?: Value, options?: CallOptions): Promise<any>;
  worker(index: number): WorkerState;
  participant(index: number): ParticipantState;
  waitWorker(index: number, timeout?: number): Promise<string[]>;
  releaseWorker(index: number, timeout?: number): Promise<ParticipantState>;
  reserveWorker(index: number): number;
  workers(): WorkerState[];
  info(): RegionInfo;
  close(): Promise<void>;
}

/** Starts a pool of worker processes; resolves once each is ready. */
export function pool(options: PoolOptions): Promise<Pool>;

/** What a handler sees of its call. */
export class Context {
  /** Aborted when the caller cancels the call. */
  readonly signal: AbortSignal;
  readonly cancelled: boolean;
  readonly requestId: number;
  readonly contentType: number;
  /** The request bytes; valid only until the handler settles (then detached). */
  readonly payload: Buffer;
  /** CLOCK_MONOTONIC ns of the deadline; 0 without one. */
  readonly deadlineNs: number;
  /** ms until the deadline, or null. */
  timeLeft(): number | null;
  /** The decoded payload. */
  value(): any;
  /** A channel to the caller (streaming handlers). */
  openChannel(): Promise<Sender>;
  /** The channel the caller opened for this call. */
  takeChannel(): Promise<Receiver>;
}

export type HandlerFunction = (value: any, ctx: Context) => unknown;
export interface Handler {
  fn: Function;
  raw: boolean;
  streaming: boolean;
}
/** Marks a handler raw (it gets the Context only) or streaming. */
export function handler(fn: (ctx: Context) => unknown, options: { raw: true; streaming?: boolean }): Handler;
export function handler(fn: HandlerFunction, options?: { raw?: false; streaming?: boolean }): Handler;

export interface ServeOptions {
  /** Attach to this region and slot instead of KNIT_REGION / KNIT_SLOT. */
  region?: string;
  slot?: number;
  spin?: 'none' | 'default';
}

/** Serves handlers until the host shuts the pool down (resolves), or rejects with the
    KnitError that ended the worker (PeerDied when the host died). */
export function serve(handlers: Record<string, HandlerFunction | Handler> | Map<string, HandlerFunction | Handler>, options?: ServeOptions): Promise<void>;

export function version(): string;
export function handleCount(): number;
export function monotonicNs(): bigint;
