import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { reverseName } from '../../src/backend/reverse.js';

describe('reverse lookup for XCLIENT NAME', () => {
  it('is bounded in time and never throws: a name, null ([UNAVAILABLE]) or [TEMPUNAVAIL]', async () => {
    for (const addr of ['127.0.0.1', '192.0.2.1', '::1']) {
      const t = Date.now();
      const name = await reverseName(addr, 300);
      assert.ok(Date.now() - t < 1500, 'bounded');
      assert.ok(name === null || name === '[TEMPUNAVAIL]' || /^[A-Za-z0-9.-]+$/.test(name), String(name));
    }
  });
});
