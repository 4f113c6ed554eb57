// Warms V8's feedback for net.Socket's constructor before the first connection (issue 26).
//
// Node 20's Socket constructor copies its options (`options = { ...options }`) and then sets
// four properties on the copy (allowHalfOpen, emitClose, autoDestroy, decodeStrings). In
// V8 11.3, while that copy site has seen only one or two shapes of options, each copy is
// given a map of its own, and adding a property to it is not
// a cached transition: every socket pays a map copy in the runtime per added property, and
// every inline cache after it (the stream states' reads of the options) misses on a map it
// will never see again. A server has exactly two shapes at that site: the accepted socket's
// options (node:net's onconnection) and its own connect options.
//
// Measured on Node 20.20 (bench/socket-feedback.ts): about 9 µs per socket in that state,
// 0.5 µs once the site has seen five shapes a few times each; W1 CPU per session 11 % less
// (bench/CHANGES.md). The sockets made here are plain objects: no handle, no fd, never
// connected, left to the collector.

import net from 'node:net';

/** Shapes the copy site has not seen: five is past V8's polymorphic limit (four). */
const SHAPES: readonly (() => net.SocketConstructorOpts | undefined)[] = [
  () => undefined,
  () => ({ allowHalfOpen: false }),
  () => ({ readable: false }),
  () => ({ writable: false }),
  () => ({ allowHalfOpen: false, readable: false }),
];
/** Each shape more than once: the first calls leave the site's feedback in its first states. */
const ROUNDS = 20;

let done = false;

/** Once per process, before it accepts or opens a connection (a few milliseconds). Returns the sockets it made: 0 after the first call. */
export function warmSocketFeedback(): number {
  if (done) return 0;
  done = true;
  for (let i = 0; i < ROUNDS; i++) for (const shape of SHAPES) new net.Socket(shape());
  return ROUNDS * SHAPES.length;
}
