import { randomBytes } from 'node:crypto';

// Connection ids: a random per-process prefix and a counter, so ids stay unique across
// restarts and workers and can join Postern's logs with a backend's (PROXY UNIQUE_ID).
const prefix = randomBytes(3).toString('hex');
let counter = 0;

export function nextConnId(): string {
  counter = (counter + 1) % 0x7fffffff;
  return `${prefix}${counter.toString(36).padStart(5, '0')}`;
}
