// bench/pool.mjs: the tasks for workerpool.
'use strict';
const workerpool = require('workerpool');
const { threadId } = require('node:worker_threads');

const fibOf = (n) => (n < 2 ? n : fibOf(n - 1) + fibOf(n - 2));
workerpool.worker({ identity: (x) => x, fib: (n) => [fibOf(n), threadId] });
