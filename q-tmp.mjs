import { LoopThread } from 'loopthread';
const loop = new LoopThread({ name: 'q' });
const id = async (v) => v;
const p = process.argv[2] === 'big' ? 'x'.repeat(65536) : 'abcdefgh';
loop.runSync(id, 'a');
const out = [];
for (let r = 0; r < 25; r++) {
  const n = 1000; const c0 = process.cpuUsage(); const t = performance.now();
  for (let i = 0; i < n; i++) loop.runSync(id, p);
  const wall = performance.now() - t; const c = process.cpuUsage(c0);
  out.push(`${(wall * 1000 / n).toFixed(0)}/${(((c.user + c.system) / 1000) / wall * 100).toFixed(0)}%`);
}
console.log(out.join(' '));
loop.closeSync();
