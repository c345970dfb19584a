// The HOWTO's image-processing pattern with Channel: the main event loop submits jobs into one
// channel, two worker threads take them with the blocking end (getSync / iterateSync), process them
// and put results into a second channel, and the main loop awaits the results in order of
// completion. Run with `node examples/channel-pipeline.mjs` after `npm run build`.
import { isMainThread, Worker, workerData } from 'node:worker_threads';
import { Channel } from 'loopthread';

/** The "image processing": a box blur over a fake grey image, then a checksum of the result. */
function blur(width, height, pixels) {
  let out = pixels;
  for (let pass = 0; pass < 4; pass++) out = blurOnce(width, height, out);
  let checksum = 0;
  for (const v of out) checksum = (checksum * 31 + v) >>> 0;
  return checksum;
}

function blurOnce(width, height, pixels) {
  const out = new Uint8Array(pixels.length);
  for (let y = 1; y < height - 1; y++) {
    for (let x = 1; x < width - 1; x++) {
      let sum = 0;
      for (let dy = -1; dy <= 1; dy++) for (let dx = -1; dx <= 1; dx++) sum += pixels[(y + dy) * width + x + dx];
      out[y * width + x] = sum / 9;
    }
  }
  return out;
}

if (isMainThread) {
  const jobs = new Channel({ capacity: 8 }); // back-pressure: put() waits while 8 jobs are queued
  const results = new Channel();
  // A handle per connection: each worker gets jobs and puts results.
  const workers = [1, 2].map((id) => {
    const workerData = { id, jobs: jobs.createHandle({ role: 'get' }), results: results.createHandle({ role: 'put' }) };
    return new Worker(new URL(import.meta.url), {
      workerData,
      transferList: [workerData.jobs.port, workerData.results.port],
    });
  });
  // Listened for from the start: a worker may well exit before the last result is printed.
  const exited = workers.map((w) => new Promise((resolve) => w.once('exit', resolve)));

  const count = 12;
  const submitting = (async () => {
    for (let n = 0; n < count; n++) {
      const size = 200 + ((n * 37) % 5) * 100; // images of different sizes finish out of order
      const pixels = new Uint8Array(size * size).map((_, i) => (i * (n + 1)) & 0xff);
      await jobs.put({ n, width: size, height: size, pixels });
    }
    jobs.close(); // the workers drain what is left, then their iterations end
  })();

  for (let done = 0; done < count; done++) {
    const r = await results.get(); // in order of completion, without blocking the loop
    console.log(`image ${r.n} (${r.width}x${r.height}) done by worker ${r.worker}: checksum ${r.checksum}`);
  }
  await submitting;
  await Promise.all(exited);
  console.log('all images processed; workers exited');
} else {
  const jobs = Channel.connect(workerData.jobs);
  const results = Channel.connect(workerData.results);
  for (const { n, width, height, pixels } of jobs.iterateSync()) {
    results.putSync({ n, width, height, worker: workerData.id, checksum: blur(width, height, pixels) });
  }
}
