// zndsl helper: calls an Ethereum JSON-RPC method (no params) on the eth-rpc member and
// returns the result as a number. With a second argument N, polls until the result is >= N.
//   eth-rpc: js-script ./eth-rpc.js with "eth_chainId" return is 33380 within 60 seconds
"use strict";

async function call(url, method) {
  const response = await fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params: [] }),
  });
  const body = await response.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return parseInt(body.result, 16);
}

async function run(nodeName, networkInfo, args) {
  const [method, atLeast] = args;
  const url = networkInfo.nodesByName[nodeName].wsUri.replace(/^ws/, "http");
  for (;;) {
    let value;
    try {
      value = await call(url, method);
    } catch (e) {
      // Not up yet: zndsl's `within` bounds the wait.
      value = undefined;
    }
    if (value !== undefined && (atLeast === undefined || value >= Number(atLeast))) return value;
    await new Promise((resolve) => setTimeout(resolve, 1000));
  }
}

module.exports = { run };
