'use strict';
// Errors: every failure is a KnitError carrying the registry code (spec/09 §9.1), its name
// and the message of the outcome; one subclass per code a user catches.
const native = require('./native');

/** A Knit failure: `code` (registry or application code), `name` (its registry name:
    `"PEER_DIED"`, ...; `"APPLICATION"` or `"UNKNOWN"` outside the registry), `message`.
    Test the kind with `instanceof` (PeerDied, Cancelled, ...). */
class KnitError extends Error {
  constructor(message, code) {
    super(message);
    const c = code === undefined ? new.target.code : code;
    /** The status: a registry code, or an application code 1000 to 65535. */
    this.code = c === undefined ? 2 : c;
  }

  /** The registry name of the code (`"PEER_DIED"`, ...), `"APPLICATION"` or `"UNKNOWN"`. */
  get name() {
    return native.statusName(this.code);
  }
}

const CLASSES = {};

function define(name, code, base = KnitError) {
  const cls = {
    [name]: class extends base {
      constructor(message, c) {
        super(message, c === undefined ? code : c);
      }
    },
  }[name];
  cls.code = code;
  if (code !== undefined) CLASSES[code] = cls;
  return cls;
}

/** Failures of a region at attach (spec/09 §9.1, 100 to 107). */
const AttachError = define('AttachError', undefined);
/** Protocol violations found in peer memory (200 to 208). */
const ProtocolViolation = define('ProtocolViolation', undefined);

const errors = {
  KnitError,
  AttachError,
  ProtocolViolation,
  UnknownFunction: define('UnknownFunction', 1),
  HandlerFailed: define('HandlerFailed', 2),
  PayloadTooLarge: define('PayloadTooLarge', 3),
  Cancelled: define('Cancelled', 4),
  DeadlineExceeded: define('DeadlineExceeded', 5),
  PeerDied: define('PeerDied', 6),
  Shutdown: define('Shutdown', 7),
  WouldBlock: define('WouldBlock', 8),
  ChannelClosed: define('ChannelClosed', 9),
  ChannelAborted: define('ChannelAborted', 10),
  InvalidArgument: define('InvalidArgument', 11),
  OsError: define('OsError', 12),
  SlotTaken: define('SlotTaken', 13),
  TimedOut: define('TimedOut', 14),
  BadMagic: define('BadMagic', 100, AttachError),
  UnsupportedVersion: define('UnsupportedVersion', 101, AttachError),
  MissingFeature: define('MissingFeature', 102, AttachError),
  BadChecksum: define('BadChecksum', 103, AttachError),
  BadLayout: define('BadLayout', 104, AttachError),
  RegionTooSmall: define('RegionTooSmall', 105, AttachError),
  NotReady: define('NotReady', 106, AttachError),
  Poisoned: define('Poisoned', 107, AttachError),
  BadPosition: define('BadPosition', 200, ProtocolViolation),
  BadRecordLength: define('BadRecordLength', 201, ProtocolViolation),
  BadPadding: define('BadPadding', 202, ProtocolViolation),
  UnknownRecord: define('UnknownRecord', 203, ProtocolViolation),
  BadFragment: define('BadFragment', 204, ProtocolViolation),
  UnknownRequest: define('UnknownRequest', 205, ProtocolViolation),
  BadRecord: define('BadRecord', 206, ProtocolViolation),
  BadParticipant: define('BadParticipant', 207, ProtocolViolation),
  BadChannel: define('BadChannel', 208, ProtocolViolation),
};

/** An application failure: a code from 1000 to 65535 chosen by the handler. */
class ApplicationError extends KnitError {
  constructor(message, code) {
    if (!Number.isInteger(code) || code < 1000 || code > 65535) {
      throw new RangeError(`an application code is 1000 to 65535, not ${code}`);
    }
    super(message, code);
  }
}
errors.ApplicationError = ApplicationError;

/** The error of `code` with `message`: its class, ApplicationError, or a plain KnitError
    carrying the raw code (CALL-7: an unknown code is delivered as is). */
function errorFor(code, message) {
  const cls = CLASSES[code];
  if (cls) return new cls(message);
  if (code >= 1000 && code <= 65535) return new ApplicationError(message, code);
  return new KnitError(message, code);
}
errors.errorFor = errorFor;

native.setErrorFactory(errorFor);
module.exports = errors;
