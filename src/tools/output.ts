// The reader of a tool's stdout may leave early (`postern status --watch 1 | head`). The next
// write then fails with EPIPE, which a stream reports as an 'error' event: unheard, that is
// an uncaught exception with a stack. Here it ends the output instead.

export interface Out {
  write(s: string): unknown;
}

export interface ReaderWatch {
  /** Aborted when the output failed; the reason is the stream's error. */
  readonly gone: AbortSignal;
  /** Whether the failure was anything but the reader leaving (EPIPE): that one is worth a line on stderr. */
  failed(): Error | null;
}

/**
 * Listens for `out`'s errors (a plain writer without events, as tests pass, never fails).
 * The listener stays for the life of the process: a write's error can arrive after the tool
 * returned, while the CLI is exiting.
 */
export function watchReader(out: Out): ReaderWatch {
  const ctl = new AbortController();
  let error: Error | null = null;
  const s = out as Partial<Pick<NodeJS.WritableStream, 'on'>>;
  if (typeof s.on === 'function') {
    s.on.call(out, 'error', (e: NodeJS.ErrnoException) => {
      if (ctl.signal.aborted) return;
      // After EPIPE the stream is destroyed and later writes fail with ERR_STREAM_DESTROYED: same cause.
      if (e.code !== 'EPIPE' && e.code !== 'ERR_STREAM_DESTROYED') error = e;
      ctl.abort(e);
    });
  }
  return { gone: ctl.signal, failed: () => error };
}
