// Lines from a byte stream with a ceiling on line length: readline would buffer a
// newline-free gigabyte, this drops any line over `max` bytes and counts it instead.

export const MAX_LINE = 1 << 20;

/** Calls `onLine` for every line (without its LF or CR LF); returns how many were too long. */
export async function eachLine(
  src: AsyncIterable<Buffer | string>,
  onLine: (line: string) => void,
  max = MAX_LINE,
): Promise<{ tooLong: number }> {
  let parts: Buffer[] = [];
  let len = 0;
  let skipping = false;
  let tooLong = 0;
  const emit = (last: Buffer) => {
    let line = parts.length === 0 ? last.toString('utf8') : Buffer.concat([...parts, last]).toString('utf8');
    if (line.endsWith('\r')) line = line.slice(0, -1);
    onLine(line);
  };
  for await (const chunk of src) {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    let start = 0;
    for (;;) {
      const nl = buf.indexOf(10, start);
      const end = nl === -1 ? buf.length : nl;
      if (!skipping) {
        if (len + (end - start) > max) {
          skipping = true;
          tooLong++;
          parts = [];
          len = 0;
        } else if (nl !== -1) {
          emit(buf.subarray(start, end));
          parts = [];
          len = 0;
        } else if (end > start) {
          // Copy the tail so a kept fragment does not pin the whole chunk.
          parts.push(Buffer.from(buf.subarray(start, end)));
          len += end - start;
        }
      }
      if (nl === -1) break;
      skipping = false;
      start = nl + 1;
    }
  }
  if (!skipping && len > 0) emit(Buffer.alloc(0));
  return { tooLong };
}
