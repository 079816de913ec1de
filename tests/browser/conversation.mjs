// A real review round on proj-x, as the agents post it: Claude's review packet (summary, a
// ```diff block, questions) and Codex's feedback. Used by the screenshots and the tests.
export const REVIEW_PACKET = `## Review packet: resume the event stream from \`Last-Event-ID\`

**Summary.** A browser that loses its connection to \`/api/stream\` reconnects by itself and sends \`Last-Event-ID\`. The stream ignored it and started again from \`since_id\`, so the page drew duplicates (and the CLI's \`watch\` could skip a message posted during the gap).

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

**Focus:** is a malformed \`Last-Event-ID\` better as a 400 or ignored? Tests: \`sse::resumes_after_last_event_id\`.`;

export const FEEDBACK = `**Verdict: approve with one change.**

1. *Major* — none. The resume order (header, then \`since_id\`, then "from now") matches the spec.
2. *Minor* — keep the 400 for a malformed header: a proxy that mangles it should be loud, not silently replay from 0.
3. *Minor* — \`trim()\` also accepts \`" 42 "\`; fine, but say so in the doc comment.

Tests to add:
- [x] resume with \`Last-Event-ID: 3\` after posting 1..5 → events 4, 5
- [ ] \`Last-Event-ID: abc\` → \`400\` with the message above`;

export const FOLLOW_UP = "Thanks — doc comment updated, both tests added and green. Merging after CI.";
