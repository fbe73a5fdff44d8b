// Adds jobs to a BullMQ queue as a Node application would, then exits.
//   node producer.mjs --url redis://127.0.0.1:6379/0 --queue q [--prefix bull] [--bulk yes] < jobs.json
// stdin: a JSON array of {"name", "data", "opts"} (opts in BullMQ's own terms, e.g. its
// priority scale where 1 is the most urgent); an item with "scheduler": {"id", "repeat"} is
// upserted as a job scheduler (Queue.upsertJobScheduler) with the item as its job template.
// stdout: one JSON array of the ids of the jobs added (a scheduler's first job), in order.
import { Queue } from 'bullmq';
import IORedis from 'ioredis';
import { parseArgs, queueOptions, readStdin } from './args.mjs';

const args = parseArgs(process.argv.slice(2), { bulk: 'no' });
const jobs = JSON.parse(await readStdin());
const connection = new IORedis(args.url, { maxRetriesPerRequest: null });
const queue = new Queue(args.queue, queueOptions(args, connection));
try {
  let added;
  if (args.bulk === 'yes') {
    added = await queue.addBulk(jobs);
  } else {
    added = [];
    for (const job of jobs) {
      const { scheduler, ...template } = job;
      added.push(
        scheduler
          ? await queue.upsertJobScheduler(scheduler.id, scheduler.repeat, template)
          : await queue.add(job.name, job.data, job.opts ?? {}),
      );
    }
  }
  process.stdout.write(JSON.stringify(added.map((job) => job.id)) + '\n');
} finally {
  await queue.close();
  await connection.quit();
}
