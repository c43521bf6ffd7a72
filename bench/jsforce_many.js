// bench/jsforce_many.js: the jsforce contender of the Many scenario, the way a JavaScript
// user would write it: start N asynchronous runs together (executeAsync under
// Promise.all), then poll each instance with instance.retrieve() every POLL_MS until it
// is no longer New/Running. Prints the wall time of that (process start-up excluded).
//
//   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... node bench/jsforce_many.js REPORT_ID [N] [POLL_MS]
'use strict';
const path = require('path');
const modules = process.env.BENCH_NODE_MODULES || path.join(__dirname, '..', '.cache', 'bench', 'node_modules');
const jsforce = require(path.join(modules, 'jsforce'));

const [reportId, nArg = '100', pollArg = '500'] = process.argv.slice(2);
const n = Number(nArg);
const pollMs = Number(pollArg);
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function runOne(report) {
  const started = await report.executeAsync({ details: true });
  const instance = report.instance(started.id);
  for (;;) {
    await sleep(pollMs);
    const result = await instance.retrieve();
    const status = result.attributes.status;
    if (status === 'Success') return result;
    if (status !== 'New' && status !== 'Running') throw new Error(`instance ${started.id}: ${status}`);
  }
}

async function main() {
  const conn = new jsforce.Connection({
    instanceUrl: process.env.SF_INSTANCE_URL,
    accessToken: process.env.SF_ACCESS_TOKEN,
    version: '60.0',
  });
  const report = conn.analytics.report(reportId);
  const t0 = process.hrtime.bigint();
  const results = await Promise.all(Array.from({ length: n }, () => runOne(report)));
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const failed = results.filter((r) => !r || !r.factMap).length;
  process.stderr.write(`bench run_wall ${wall.toFixed(4)}\nbench failed ${failed}\n`);
}

main().catch((e) => {
  process.stderr.write(`jsforce_many: ${e && e.message}\n`);
  process.exit(1);
});
