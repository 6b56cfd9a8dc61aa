#!/usr/bin/env node
// Compiles src/*.sol (and test/*.sol, contracts only tests deploy) with the pinned solcjs into out/<Contract>.json ({abi, bytecode,
// deployedBytecode, compiler}), the artifacts the Rust crates embed with alloy's `sol!`.
//
//   node build.js          write out/
//   node build.js --check  fail if out/ differs from a fresh compile (CI runs this)
"use strict";
const fs = require("fs");
const path = require("path");
const solc = require("solc");

// src/: the chain's contracts. test/: contracts that only tests deploy (hostile callers).
const SOURCE_DIRS = ["src", "test"];
const OUT = path.join(__dirname, "out");
const check = process.argv.includes("--check");

const sources = {};
for (const dir of SOURCE_DIRS) {
  const full = path.join(__dirname, dir);
  if (!fs.existsSync(full)) continue;
  for (const file of fs.readdirSync(full).filter((f) => f.endsWith(".sol")).sort()) {
    sources[`${dir}/${file}`] = { content: fs.readFileSync(path.join(full, file), "utf8") };
  }
}
const settings = {
  // pallet-revive's EVM interpreter implements the Cancun instruction set.
  evmVersion: "cancun",
  optimizer: { enabled: true, runs: 200 },
  // No metadata hash: the bytecode then depends only on the source and these settings, not on
  // file paths, so a recompile anywhere is byte-identical.
  metadata: { bytecodeHash: "none", appendCBOR: false },
  outputSelection: { "*": { "*": ["abi", "evm.bytecode.object", "evm.deployedBytecode.object"] } },
};
const output = JSON.parse(solc.compile(JSON.stringify({ language: "Solidity", sources, settings })));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) console.error(e.formattedMessage);
if (errors.length) process.exit(1);

let stale = [];
for (const [file, contracts] of Object.entries(output.contracts)) {
  for (const [name, c] of Object.entries(contracts)) {
    // Interfaces have no code and need no artifact: `sol!` declares them from the source.
    if (c.evm.bytecode.object === "") continue;
    const artifact = {
      contractName: name,
      sourceName: `contracts/${file}`,
      compiler: { solc: solc.version(), settings },
      abi: c.abi,
      bytecode: "0x" + c.evm.bytecode.object,
      deployedBytecode: "0x" + c.evm.deployedBytecode.object,
    };
    const text = JSON.stringify(artifact, null, 2) + "\n";
    const target = path.join(OUT, `${name}.json`);
    if (check) {
      const committed = fs.existsSync(target) ? fs.readFileSync(target, "utf8") : "";
      if (committed !== text) stale.push(path.relative(__dirname, target));
    } else {
      fs.mkdirSync(OUT, { recursive: true });
      fs.writeFileSync(target, text);
      console.log(`wrote ${path.relative(__dirname, target)} (${c.evm.deployedBytecode.object.length / 2} bytes of code)`);
    }
  }
}
if (stale.length) {
  console.error(`stale artifacts: ${stale.join(", ")}; run \`npm run build\` in contracts/ and commit out/`);
  process.exit(1);
}
if (check) console.log(`contracts/out is up to date with solc ${solc.version()}`);
