// Drive postroom's IMAP server with imapflow: read mail, fetch structure, wait in IDLE.
// Usage: node imapflow_check.mjs HOST PORT USER
// Prints one JSON object per line; the Python test reads them.
import { ImapFlow } from "imapflow";

const [host, port, user] = process.argv.slice(2);
const client = new ImapFlow({
  host, port: Number(port), secure: false, auth: { user, pass: "x" },
  logger: false, disableAutoIdle: false,
});
const out = (o) => process.stdout.write(JSON.stringify(o) + "\n");

await client.connect();
const lock = await client.getMailboxLock("INBOX");
try {
  const mb = client.mailbox;
  out({ event: "opened", exists: mb.exists, uidValidity: String(mb.uidValidity) });
  const messages = [];
  for await (const m of client.fetch("1:*", { uid: true, envelope: true, bodyStructure: true, flags: true, source: true })) {
    messages.push({
      uid: m.uid, subject: m.envelope.subject, from: m.envelope.from[0].address,
      type: m.bodyStructure.type, size: m.source.length, flags: [...m.flags],
    });
  }
  out({ event: "messages", messages });
  const found = await client.search({ subject: "imapflow" }, { uid: true });
  out({ event: "search", uids: found });
  await client.messageFlagsAdd("1", ["\\Flagged"]);
  out({ event: "ready" });
  // wait for new mail while idling; the test sends one message now
  const grown = new Promise((resolve) => client.on("exists", (d) => resolve(d)));
  const d = await Promise.race([grown, new Promise((r) => setTimeout(() => r(null), 20000))]);
  out({ event: "exists", count: d ? d.count : null });
} finally {
  lock.release();
}
await client.logout();
