/** The parity corpus of test/parity.test.ts, many more runs. */
process.env.PARITY_RUNS ??= '3000';
void import('../parity.test.js');
