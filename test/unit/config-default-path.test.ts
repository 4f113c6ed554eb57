// The default config: `conf/postern.yaml` in the working directory when it exists (a
// checkout), else /etc/postern/postern.yaml (an installed package run from anywhere).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { defaultConfigPath, LOCAL_CONFIG, missingDefaultConfig, SYSTEM_CONFIG } from '../../src/config/index.js';

const only = (...paths: string[]) => (p: string): boolean => paths.includes(p);

describe('default config path', () => {
  it('is conf/postern.yaml when the working directory has one', () => {
    assert.equal(defaultConfigPath('/srv/checkout', only('/srv/checkout/conf/postern.yaml', SYSTEM_CONFIG)), LOCAL_CONFIG);
    assert.equal(missingDefaultConfig('/srv/checkout', only('/srv/checkout/conf/postern.yaml')), null);
  });

  it('is /etc/postern/postern.yaml otherwise', () => {
    assert.equal(SYSTEM_CONFIG, '/etc/postern/postern.yaml');
    assert.equal(defaultConfigPath('/', only(SYSTEM_CONFIG)), SYSTEM_CONFIG);
    assert.equal(missingDefaultConfig('/', only(SYSTEM_CONFIG)), null);
    // Neither exists: /etc is still what is read, and the message names both paths tried.
    assert.equal(defaultConfigPath('/home/op', only()), SYSTEM_CONFIG);
    assert.equal(
      missingDefaultConfig('/home/op', only()),
      'no config file: neither /home/op/conf/postern.yaml nor /etc/postern/postern.yaml exists (name one with -c FILE)',
    );
  });
});
