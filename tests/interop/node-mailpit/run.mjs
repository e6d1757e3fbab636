// Drives a running postroom with the npm `mailpit-api` client (Mailpit's TypeScript client).
// Usage: node run.mjs http://127.0.0.1:PORT   -- prints one JSON line of what it saw; exits 1 on failure.
import assert from "node:assert/strict";
import { MailpitClient } from "mailpit-api";

const mailpit = new MailpitClient(process.argv[2]);
const seen = {};

const sent = await mailpit.sendMessage({
  From: { Email: "node@example.com", Name: "Node Client" },
  To: [{ Email: "reader@example.com" }],
  Subject: "from mailpit-api",
  Text: "hello from node",
  Tags: ["node"],
  Attachments: [{ Filename: "note.txt", Content: Buffer.from("attached").toString("base64") }],
});
assert.ok(sent.ID);
await mailpit.sendMessage({ From: { Email: "other@example.com" }, To: [{ Email: "x@example.com" }], Subject: "second" });

const list = await mailpit.listMessages();
assert.equal(list.total, 2);
assert.equal(list.messages[1].ID, sent.ID);
assert.equal(list.messages[1].Subject, "from mailpit-api");
seen.listed = list.messages.map((m) => m.Subject);

const found = await mailpit.waitForMessage({ query: "subject:mailpit-api" }, { timeout: 10000, interval: 100 });
assert.equal(found.ID, sent.ID);
const msg = await mailpit.getMessageSummary(sent.ID);
assert.equal(msg.From.Address, "node@example.com");
assert.equal(msg.Text.trim(), "hello from node");
assert.equal(msg.Attachments[0].FileName, "note.txt");
const part = await mailpit.getMessageAttachment(sent.ID, msg.Attachments[0].PartID);
seen.attachment = await part.text();
const headers = await mailpit.getMessageHeaders(sent.ID);
assert.deepEqual(headers.Subject, ["from mailpit-api"]);
const source = await mailpit.getMessageSource(sent.ID);
assert.match(source, /Subject: from mailpit-api/);
seen.text = await mailpit.renderMessageText(sent.ID);

const search = await mailpit.searchMessages({ query: "hello node" });
assert.equal(search.messages_count, 1);
await mailpit.setReadStatus({ IDs: [sent.ID], Read: false });
assert.equal((await mailpit.searchMessages({ query: "is:unread" })).messages_count, 2);
await mailpit.setTags({ IDs: [sent.ID], Tags: ["a", "b"] });
assert.deepEqual(await mailpit.getTags(), ["a", "b"]);
await mailpit.renameTag("a", "c");
await mailpit.deleteTag("b");
assert.deepEqual(await mailpit.getTags(), ["c"]);
const info = await mailpit.getInfo();
assert.equal(info.Messages, 2);
await mailpit.getConfiguration();

await mailpit.deleteMessages({ IDs: [sent.ID] });
assert.equal((await mailpit.listMessages()).total, 1);
await mailpit.deleteMessagesBySearch({ query: "subject:second" });
assert.equal((await mailpit.listMessages()).total, 0);
await mailpit.sendMessage({ From: { Email: "a@example.com" }, To: [{ Email: "b@example.com" }] });
await mailpit.deleteMessages();
seen.finalTotal = (await mailpit.listMessages()).total;
await assert.rejects(mailpit.getMessageSummary("no-such-id"), /404/);

// The checks (docs/checks.md) through the client's own methods and types.
const checked = await mailpit.sendMessage({
  From: { Email: "a@example.com" },
  To: [{ Email: "b@example.com" }],
  Subject: "checks",
  HTML: '<div style="display:flex"><a href="http://127.0.0.1:1/x">x</a></div>',
});
const html = await mailpit.htmlCheck(checked.ID);
seen.htmlWarnings = html.Warnings.map((w) => w.Slug);
assert.ok(html.Total.Tests > 0 && html.Platforms);
const links = await mailpit.linkCheck(checked.ID, false);
seen.linkErrors = links.Errors; // 127.0.0.1 is refused without --link-check-private
await assert.rejects(mailpit.spamAssassinCheck(checked.ID), /400/); // no --enable-spamassassin

console.log(JSON.stringify(seen));
