// Drive postroom's X-GM-EXT-1 with imapflow: its emailId / threadId come from X-GM-MSGID /
// X-GM-THRID when the server lists X-GM-EXT-1, and search({threadId}) / search({emailId})
// send X-GM-THRID / X-GM-MSGID. Usage: node imapflow_gmail.mjs HOST PORT USER
// Prints one JSON object; the Python test reads it.
import { ImapFlow } from "imapflow";

const [host, port, user] = process.argv.slice(2);
const client = new ImapFlow({ host, port: Number(port), secure: false, auth: { user, pass: "x" }, logger: false });

await client.connect();
const lock = await client.getMailboxLock("INBOX");
const result = { gm: client.capabilities.has("X-GM-EXT-1"), messages: [] };
try {
  for await (const m of client.fetch("1:*", { uid: true, envelope: true, threadId: true })) {
    result.messages.push({ uid: m.uid, subject: m.envelope.subject, emailId: m.emailId, threadId: m.threadId });
  }
  const first = result.messages[0];
  result.byThread = await client.search({ threadId: first.threadId }, { uid: true });
  result.byEmail = await client.search({ emailId: result.messages[1].emailId }, { uid: true });
} finally {
  lock.release();
}
await client.logout();
process.stdout.write(JSON.stringify(result) + "\n");
