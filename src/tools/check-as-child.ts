// The child of `postern check --as USER` (tools/check-as.ts): becomes the user for good
// (supplementary groups, group, uid), runs the checks as it, and prints a ChildAnswer as
// JSON on stdout. Every module is loaded before the privileges are dropped.
import { dropPrivileges } from '../server/privileges.js';
import { checkConfigFile } from '../config/check.js';
import { userFileChecks, type ChildAnswer, type ChildRequest } from './check-as.js';

// Files run_as hands to the user at start: reading them as the user now proves nothing.
const HANDED_OVER = new Set(['tls.ticket_keys.file', 'tls.session_cache.file']);

const req = JSON.parse(process.argv[2] ?? '{}') as ChildRequest;
dropPrivileges(req.account);
const checked = checkConfigFile(req.file).filter((p) => !(req.handover && HANDED_OVER.has(p.path)));
const seen = new Set(checked.map((p) => `${p.path}\0${p.message}`));
const own = checkConfigFile(req.file, (_raw, _dir, config) => (config === null ? [] : userFileChecks(config, req.account.user, req))).filter(
  (p) => !seen.has(`${p.path}\0${p.message}`),
);
const answer: ChildAnswer = { checked, own };
process.stdout.write(JSON.stringify(answer));
