// The reference x402 v2 client (@x402/fetch + @x402/evm) buys `url` once.
// Usage: BUYER_KEY=0x… ASSET=0x… node buy-v2.mjs <url>
// Our USDT is not one of the client's default assets, so it is allowed explicitly, capped at
// 1 USDT per payment.
// Prints one JSON line: {status, body, settlement}.
import { decodePaymentResponseHeader, wrapFetchWithPaymentFromConfig } from "@x402/fetch";
import { ExactEvmScheme } from "@x402/evm";
import { privateKeyToAccount } from "viem/accounts";

const [url] = process.argv.slice(2);
const account = privateKeyToAccount(process.env.BUYER_KEY);
const fetchWithPayment = wrapFetchWithPaymentFromConfig(fetch, {
  schemes: [{ network: "eip155:*", client: new ExactEvmScheme(account) }],
  spendControls: {
    allowedAssets: [{ network: "eip155:84532", asset: process.env.ASSET, maxAmountPerPayment: "1000000" }],
  },
});
const response = await fetchWithPayment(url);
const header = response.headers.get("PAYMENT-RESPONSE");
console.log(JSON.stringify({
  status: response.status,
  body: await response.text(),
  settlement: header ? decodePaymentResponseHeader(header) : null,
}));
