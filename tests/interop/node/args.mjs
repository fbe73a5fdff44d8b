// Command-line options shared by producer.mjs and consumer.mjs: --name value pairs; --url and
// --queue are required, so a test that forgets one fails with the name. Without --prefix the
// queue uses BullMQ's own default prefix ("bull").
export function parseArgs(argv, defaults = {}) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    if (!flag.startsWith('--') || i + 1 >= argv.length) {
      throw new Error(`expected --name value pairs, got ${JSON.stringify(argv.slice(i))}`);
    }
    out[flag.slice(2)] = argv[i + 1];
  }
  for (const name of ['url', 'queue']) {
    if (!out[name]) throw new Error(`--${name} is required`);
  }
  return out;
}

export async function readStdin() {
  const chunks = [];
  for await (const chunk of process.stdin) chunks.push(chunk);
  return Buffer.concat(chunks).toString('utf8');
}

// The connection options of a Queue or Worker: the prefix only when given, since an undefined
// one would replace BullMQ's default rather than fall back to it.
export function queueOptions(args, connection) {
  return args.prefix === undefined ? { connection } : { connection, prefix: args.prefix };
}
