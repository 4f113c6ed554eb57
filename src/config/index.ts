// Postern configuration: load, validate, defaults, and the checks behind `postern check`.
export * from './types.js';
export { ConfigError, ConfigValueError, formatLocated, formatProblem, type ConfigErrorCode, type ConfigProblem } from './errors.js';
export { parseConfig, loadConfig, validateConfigText, resolveConfigPaths, type Validation } from './load.js';
export { checkConfigFile, loadCheckedConfig } from './check.js';
export { configWarnings } from './warnings.js';
export { defaultConfigPath, LOCAL_CONFIG, missingDefaultConfig, SYSTEM_CONFIG } from './default-path.js';
export { parseDuration, MAX_DURATION_MS } from './duration.js';
export { parseSize } from './size.js';
export { parseHostPort } from './address.js';
export { CidrList, parseCidr, type Cidr } from './cidr.js';
export { parseRate } from './rate.js';
export { parseIp } from './ip.js';
export { ANOMALY_KINDS, isAnomalyKind, type AnomalyKind } from './anomalies.js';
export { DEFAULTS, AUTH_HTTP_HEADERS } from './defaults.js';
export { receivedHeaderWanted } from './received.js';
export { parsePasswordFile, type HashKind, type PasswordEntry, type PasswordFileProblem, type ParsedPasswordFile } from './password-file.js';
