// Bytes cut into the pieces a socket might deliver them in.

/** `data` split at `points` (ascending offsets; repeats give empty pieces). */
export function splitAt(data: Buffer, points: readonly number[]): Buffer[] {
  const out: Buffer[] = [];
  let prev = 0;
  for (const p of points) {
    out.push(data.subarray(prev, p));
    prev = p;
  }
  out.push(data.subarray(prev));
  return out;
}
