// A real review round on proj-x, as the agents post it: Claude's review packet (summary, a
// ```diff block, questions) and Codex's feedback. Used by the screenshots and the tests.
export const REVIEW_PACKET = `## Review packet: resume the event stream from \`Last-Event-ID\`

**Summary.** A browser that loses \`/api/stream\` reconnects with \`Last-Event-ID\`; the stream ignored it and replayed from \`since_id\`, so the page drew duplicates.

\`\`\`diff
--- a/src/http/events.rs
+++ b/src/http/events.rs
@@ -57,9 +57,14 @@ pub fn message_stream(app: &Arc<App>, rq: &Incoming) -> Result<Reply, Error> {
     let target = crate::store::name("target", rq.param("target").unwrap_or(""))?;
-    let since = rq.number_param("since_id")?.unwrap_or_else(|| app.store.last_id());
+    let resume = match rq.header("last-event-id") {
+        Some(raw) => Some(raw.trim().parse::<u64>().map_err(|_| {
+            Error::BadRequest(format!("Last-Event-ID must be a message id, not {raw:?}"))
+        })?),
+        None => None,
+    };
+    let since = resume
+        .or(rq.number_param("since_id")?)
+        .unwrap_or_else(|| app.store.last_id());
     let place = app.long_requests.take()?;
\`\`\`

**Focus:** a malformed \`Last-Event-ID\`: 400, or ignore it?`;

export const FEEDBACK = `**Verdict: approve with one change.**

1. *Major:* none. Header, then \`since_id\`, then "from now" is the right order.
2. *Minor:* keep the 400. A proxy that mangles the header should be loud, not replay from 0.
3. *Minor:* \`trim()\` also accepts \`" 42 "\`; say so in the doc comment.

Tests to add:
- [x] resume with \`Last-Event-ID: 3\` after posting 1..5 → events 4, 5
- [ ] \`Last-Event-ID: abc\` → \`400\` with the message above`;

export const FOLLOW_UP = "Thanks — doc comment updated, both tests added and green. Merging after CI.";
