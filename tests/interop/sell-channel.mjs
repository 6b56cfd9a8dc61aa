// The reference x402 v2 resource server (@x402/express) sells GET /kwh from payment channels
// (@x402/evm batch-settlement/server), verifying and settling deposits through the
// facilitator at FACILITATOR_URL (ours, in the tests), whose key is the receiver authorizer.
// GET /channels answers the server's channel records, for the test to compare.
// Usage: FACILITATOR_URL=… NETWORK=eip155:… ASSET=0x… PAY_TO=0x… AMOUNT=10000 node sell-channel.mjs
// Prints "listening on http://127.0.0.1:<port>" when ready.
import express from "express";
import { HTTPFacilitatorClient } from "@x402/core/server";
import { BatchSettlementEvmScheme, InMemoryChannelStorage } from "@x402/evm/batch-settlement/server";
import { paymentMiddleware, x402ResourceServer } from "@x402/express";

const { FACILITATOR_URL, NETWORK, ASSET, PAY_TO, AMOUNT } = process.env;
const storage = new InMemoryChannelStorage();
const scheme = new BatchSettlementEvmScheme(PAY_TO, { storage, withdrawDelay: 900 });
const server = new x402ResourceServer(new HTTPFacilitatorClient({ url: FACILITATOR_URL }))
  .register(NETWORK, scheme);
const app = express();
app.get("/channels", async (_req, res) => res.json(await storage.list()));
app.use(paymentMiddleware({
  "GET /kwh": {
    accepts: {
      scheme: "batch-settlement",
      network: NETWORK,
      payTo: PAY_TO,
      price: { amount: AMOUNT, asset: ASSET, extra: { name: "Tether USD", version: "1" } },
      maxTimeoutSeconds: 60,
    },
    description: "one kWh",
    mimeType: "text/plain",
  },
}, server));
app.get("/kwh", (_req, res) => res.type("text/plain").send("1 kWh"));
const listener = app.listen(0, "127.0.0.1", () => {
  console.log(`listening on http://127.0.0.1:${listener.address().port}`);
});
