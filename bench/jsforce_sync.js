// bench/jsforce_sync.js: the jsforce contender of the Sync CSV scenario, written the way a
// JavaScript user would: run the report with details, then write its detail rows as CSV
// (display labels; grouping labels first for a summary report, like `sfreports run`).
//
//   SF_INSTANCE_URL=... SF_ACCESS_TOKEN=... node bench/jsforce_sync.js REPORT_ID [OUT]
//
// jsforce is looked up in BENCH_NODE_MODULES (bench/suite.lua installs it into
// .cache/bench/node_modules); OUT defaults to /dev/null. Prints the row count on stderr.
'use strict';
const path = require('path');
const fs = require('fs');
const modules = process.env.BENCH_NODE_MODULES || path.join(__dirname, '..', '.cache', 'bench', 'node_modules');
const jsforce = require(path.join(modules, 'jsforce'));

const [reportId, out = '/dev/null'] = process.argv.slice(2);

function csvField(s) {
  if (s === null || s === undefined) return '';
  s = String(s);
  return /[",\r\n]/.test(s) ? '"' + s.replace(/"/g, '""') + '"' : s;
}

function cellText(c) {
  return c.value === null ? '' : c.label;
}

// Detail rows in grouping order: a tabular report keeps them in T!T; a summary report
// keeps them in the fact-map entries of its leaf groupings, "<key>!T".
function collectRows(result, lines) {
  const factMap = result.factMap;
  const top = (result.groupingsDown && result.groupingsDown.groupings) || [];
  const emit = (rows, prefix) => {
    for (const row of rows || []) {
      lines.push(prefix.concat(row.dataCells.map((c) => csvField(cellText(c)))).join(','));
    }
  };
  const walk = (nodes, prefix) => {
    for (const g of nodes) {
      const p = prefix.concat(csvField(g.value === null ? '' : g.label));
      if (g.groupings && g.groupings.length > 0) walk(g.groupings, p);
      else emit((factMap[g.key + '!T'] || {}).rows, p);
    }
  };
  if (top.length === 0) emit(factMap['T!T'].rows, []);
  else walk(top, []);
}

async function main() {
  const conn = new jsforce.Connection({
    instanceUrl: process.env.SF_INSTANCE_URL,
    accessToken: process.env.SF_ACCESS_TOKEN,
    version: '60.0',
  });
  const result = await conn.analytics.report(reportId).execute({ details: true });
  const meta = result.reportMetadata;
  const ext = result.reportExtendedMetadata;
  const header = [];
  for (const g of meta.groupingsDown || []) header.push(csvField(ext.groupingColumnInfo[g.name].label));
  for (const c of meta.detailColumns) header.push(csvField(ext.detailColumnInfo[c].label));
  const lines = [header.join(',')];
  collectRows(result, lines);
  fs.writeFileSync(out, lines.join('\n') + '\n');
  process.stderr.write(`rows ${lines.length - 1}\n`);
}

main().catch((e) => {
  process.stderr.write(`jsforce_sync: ${e && e.message}\n`);
  process.exit(1);
});
