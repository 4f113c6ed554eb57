// Runs several test files in this one process (`node --import tsx test/batch.mjs FILE...`): the
// unit files each cost about a second of start-up (Node, tsx, the modules they import) for a few
// milliseconds of tests, so together they share one start.
// One module imports them all statically, so every file is loaded (and transpiled, which blocks
// the event loop) before the first test starts: loaded one by one, a later file's loading held
// up an earlier file's sockets past their timeouts. node:test then runs the files' top-level
// tests one after another, as it would in separate processes.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const imports = process.argv.slice(2).map((f) => `import ${JSON.stringify(pathToFileURL(resolve(f)).href)};`);
await import(`data:text/javascript,${encodeURIComponent(imports.join('\n'))}`);
