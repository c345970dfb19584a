// bench/pool.mjs: the tasks for poolifier.
'use strict';
const { ThreadWorker } = require('poolifier');
const { threadId } = require('node:worker_threads');

const fibOf = (n) => (n < 2 ? n : fibOf(n - 1) + fibOf(n - 2));
module.exports = new ThreadWorker({ identity: (x) => x, fib: (n) => [fibOf(n), threadId] });
