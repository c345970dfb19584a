/**
 * LOOPTHREAD_DEBUG: lifecycle events to stderr, through an ordinary subscriber of the diagnostics
 * channels. `1`, `*` or `all` log every channel; otherwise a comma-separated list of the parts
 * of the names to log (`thread`, `call`, `pool`, or a full name like `call:error`).
 */
import diagnostics from 'node:diagnostics_channel';
import { threadId } from 'node:worker_threads';
import { inspect } from 'node:util';
import { diagnosticsChannels } from './names.js';

let enabled = false;

/** Subscribes the stderr logger to the channels `setting` selects (once per thread). */
export function enableDebugLog(setting: string | undefined): void {
  if (enabled || setting === undefined || setting === '' || setting === '0') return;
  const all = setting === '1' || setting === '*' || setting === 'all';
  const parts = setting.split(',').map((part) => part.trim());
  for (const name of Object.values(diagnosticsChannels)) {
    const short = name.slice('loopthread:'.length);
    if (!all && !parts.some((part) => short === part || short.startsWith(`${part}:`))) continue;
    enabled = true;
    diagnostics.subscribe(name, (message) => {
      log(short, message);
    });
  }
}

function log(event: string, message: unknown): void {
  const fields = Object.entries(message as Record<string, unknown>)
    .map(([key, value]) => `${key}=${show(value)}`)
    .join(' ');
  process.stderr.write(`loopthread ${String(process.pid)}/${String(threadId)} ${event} ${fields}\n`);
}

function show(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isInteger(value) ? String(value) : value.toFixed(3);
  if (value instanceof Error) return JSON.stringify(`${value.name}: ${value.message}`);
  return inspect(value, { breakLength: Infinity, depth: 0 });
}
