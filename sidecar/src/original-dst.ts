/**
 * The original destination of a connection that iptables redirected to the sidecar, read through
 * the SO_ORIGINAL_DST addon (native/original_dst.c, built by node-gyp at install). Synchronous;
 * cheap (one getsockopt). Where the addon is missing, capture mode fails at startup with a
 * `CaptureUnavailableError` saying why, never later on the data path.
 */
import * as path from 'node:path';
import type { Socket } from 'node:net';
import { SidecarError } from './proxy-errors';

export interface OriginalDestination {
  readonly address: string;
  readonly port: number;
}

/** Transparent capture cannot work here (no addon, or not Linux). */
export class CaptureUnavailableError extends SidecarError {
  readonly code = 'CAPTURE_UNAVAILABLE';
}

interface Addon {
  originalDst(fd: number): OriginalDestination;
}

const ADDON_PATH = path.join(__dirname, '..', '..', 'build', 'Release', 'original_dst.node');
let loaded: Addon | CaptureUnavailableError | undefined;

function addon(): Addon | CaptureUnavailableError {
  if (loaded) return loaded;
  if (process.platform !== 'linux') {
    return (loaded = new CaptureUnavailableError(`transparent capture needs Linux (SO_ORIGINAL_DST); this is ${process.platform}`));
  }
  try {
    loaded = require(ADDON_PATH) as Addon;
  } catch (err) {
    loaded = new CaptureUnavailableError(
      `transparent capture needs the SO_ORIGINAL_DST addon, which was not built (${ADDON_PATH}): ` +
        'run `npm rebuild @weft/sidecar` with a C compiler, python3 and Node headers present', { cause: err });
  }
  return loaded;
}

/** Throws `CaptureUnavailableError` when capture cannot work on this machine. */
export function assertCaptureAvailable(): void {
  const a = addon();
  if (a instanceof CaptureUnavailableError) throw a;
}

/**
 * Where `socket` was going before it was redirected; undefined when it was not redirected (it
 * was addressed to the sidecar itself) or the socket has no file descriptor.
 */
export function originalDestination(socket: Socket): OriginalDestination | undefined {
  const a = addon();
  if (a instanceof CaptureUnavailableError) throw a;
  const fd = (socket as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  try {
    return a.originalDst(fd);
  } catch (err) {
    if ((err as { code?: string }).code === 'ENOENT') return undefined;
    throw err;
  }
}
