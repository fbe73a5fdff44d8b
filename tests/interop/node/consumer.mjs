// A BullMQ Worker, as a Node application would run one, that records every attempt it makes.
//   node consumer.mjs --url redis://... --queue q --ledger KEY [--prefix bull]
//                     [--count N] [--concurrency C]
// Each attempt pushes one JSON row to the Redis list KEY (the ledger):
//   {"worker": "node", "id", "name", "data", "attemptsMade", "priority", "t"}
// The job's data steers the attempt: "fail_attempts": n fails the first n attempts;
// "unrecoverable": true fails it for good; "sleep_ms": ms waits before finishing.
// A completed job returns {"seen_by": "node", "name", "data"}.
// Prints "ready" once the worker is connected; exits 0 after N jobs reached a final state
// (with --count) or on SIGTERM/SIGINT, after the running jobs finish.
import { UnrecoverableError, Worker } from 'bullmq';
import IORedis from 'ioredis';
import { parseArgs, queueOptions } from './args.mjs';

const args = parseArgs(process.argv.slice(2), { count: '0', concurrency: '1' });
if (!args.ledger) throw new Error('--ledger is required');
const count = Number(args.count);
const ledger = new IORedis(args.url);
const connection = new IORedis(args.url, { maxRetriesPerRequest: null });

async function processor(job) {
  const data = job.data ?? {};
  await ledger.rpush(
    args.ledger,
    JSON.stringify({
      worker: 'node',
      id: job.id,
      name: job.name,
      data: job.data,
      attemptsMade: job.attemptsMade,
      priority: job.priority,
      t: Date.now(),
    }),
  );
  if (data.sleep_ms) await new Promise((resolve) => setTimeout(resolve, data.sleep_ms));
  if (data.unrecoverable) throw new UnrecoverableError(`node gives up on ${job.id}`);
  if (job.attemptsMade < (data.fail_attempts ?? 0)) {
    throw new Error(`node boom on attempt ${job.attemptsMade + 1}`);
  }
  return { seen_by: 'node', name: job.name, data: job.data };
}

const worker = new Worker(args.queue, processor, {
  ...queueOptions(args, connection),
  concurrency: Number(args.concurrency),
  autorun: false,
});
worker.on('error', (err) => process.stderr.write(`worker error: ${err}\n`));

let settled = 0;
let stopping = null;
function stop() {
  stopping ??= (async () => {
    await worker.close();
    await ledger.quit();
    await connection.quit();
  })();
  return stopping;
}
function onSettled() {
  settled += 1;
  if (count && settled >= count) stop();
}
worker.on('completed', onSettled);
// A failed attempt that will be retried has no finishedOn; the final one has.
worker.on('failed', (job) => job?.finishedOn && onSettled());
process.on('SIGTERM', stop);
process.on('SIGINT', stop);

const running = worker.run();
await worker.waitUntilReady();
process.stdout.write('ready\n');
await running;
await stop();
