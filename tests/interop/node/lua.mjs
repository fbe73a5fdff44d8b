// Prints the Lua scripts of the installed bullmq as one JSON object, {"<name>-<keys>": text},
// named as the Python bullmq names its command files, so a test can check the two packages
// run the same scripts (tests/interop/test_node_bullmq.py).
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const scripts = require('bullmq/dist/cjs/scripts');
const out = {};
for (const script of Object.values(scripts)) {
  out[`${script.name}-${script.keys}`] = script.content;
}
process.stdout.write(JSON.stringify(out));
