// The legacy x402 v1 client (x402-fetch 1.x) buys `url` once, on Base Sepolia's chain id
// (84532), which the tests' anvil runs as.
// Usage: BUYER_KEY=0x… RPC_URL=http://127.0.0.1:… node buy-v1.mjs <url>
// Prints one JSON line: {status, body, settlement}.
import { createWalletClient, http } from "viem";
import { privateKeyToAccount } from "viem/accounts";
import { baseSepolia } from "viem/chains";
import { decodeXPaymentResponse, wrapFetchWithPayment } from "x402-fetch";

const [url] = process.argv.slice(2);
const wallet = createWalletClient({
  account: privateKeyToAccount(process.env.BUYER_KEY),
  chain: baseSepolia,
  transport: http(process.env.RPC_URL),
});
const response = await wrapFetchWithPayment(fetch, wallet)(url);
const header = response.headers.get("X-PAYMENT-RESPONSE");
console.log(JSON.stringify({
  status: response.status,
  body: await response.text(),
  settlement: header ? decodeXPaymentResponse(header) : null,
}));
