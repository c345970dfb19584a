import { LoopThread } from 'loopthread';
const loop = new LoopThread({ name: 'q' });
const id = async (v) => v;
loop.runSync(id, 'a');
for (let r = 0; r < 3; r++) {
  const n = 3000; const c0 = process.cpuUsage(); const t = performance.now();
  for (let i = 0; i < n; i++) loop.runSync(id, 'abcdefgh');
  const wall = performance.now() - t; const c = process.cpuUsage(c0);
  console.log('us/call', (wall * 1000 / n).toFixed(1), 'cpu%', (((c.user + c.system) / 1000) / wall * 100).toFixed(0));
}
// Future-based path
for (let r = 0; r < 2; r++) {
  const n = 3000; const t = performance.now();
  for (let i = 0; i < n; i++) await loop.run(id, 'abcdefgh');
  console.log('run+await us/call', ((performance.now() - t) * 1000 / n).toFixed(1));
}
loop.closeSync();
