//! The help text of the client commands: one section per command, each with its synopsis, what
//! it does and an example, shown alone by `COMMAND --help` (or `-h`) and all together by the
//! binary's `--help`, followed by the options every command takes and the exit codes.

const POST: &str = "\
Usage: claude-codex-relay post --target T --sender S [--reply-to N] [--idempotency-key K]
         [--json] [--await S2 [--timeout S]] [--] (TEXT... | -)

Posts TEXT (the words joined by spaces), or standard input with `-` (trailing newlines
removed). `--` ends the options: every word after it is text, even one starting with `-`
(a markdown list item). Prints `#id [sender] first line`; --json prints the relay's answer
{\"ok\",\"posted\",\"message\"} (`posted` is the new id).
--reply-to N marks the message as the answer to message N of the same channel.
A post the relay cannot be reached for, or that meets a passing server error, is retried
(after 0.25, 1 and 4 s) with the same idempotency key, so it is stored once; the key is made
up for each post unless --idempotency-key K gives one (the same K again within 24 hours
answers with the first message; with another text the relay refuses it).
--await S2 then waits for the first message from S2 on T after the posted one and prints it
whole (--json: as one JSON object); the posted line goes to standard error. The wait starts
from the posted id, so a reply that arrives before the wait begins is not missed. A message
of S2 that replies to another message than the posted one is passed over.
--timeout S gives up after S seconds (exit 6); without it the wait has no end.

Examples:
  git diff | claude-codex-relay post --target proj-x --sender claude --await codex -
  claude-codex-relay post --target proj-x --sender codex -- - fix the typo in README
";

const FETCH: &str = "\
Usage: claude-codex-relay fetch --target T [--since-id N | --reader R] [--limit N] [--newest]
         [--wait S] [--json | --full]

Prints messages of channel T, one line each: `#id [sender] first line`. Without
--since-id: the newest --limit (default 200, at most 500). With --since-id N: the oldest
--limit after N (--newest: the newest --limit after N); adding --wait S (up to 50) waits
until one arrives or S seconds pass. --reader R (your own name) lets the relay remember
where R is: each fetch gives the oldest --limit messages R has not been given yet (--wait
works too), so nothing needs to be kept between calls. --json: one JSON object
{id,ts,target,sender,text,reply_to?} per line; --full: a header line, then the whole text,
then an empty line. When messages after the page exist, a line on standard error says so
and names the --since-id to read on with (with --reader: the same command reads on). A
blank --reader is a usage error.

Example:
  claude-codex-relay fetch --target proj-x --since-id 41 --json
";

const CHANNELS: &str = "\
Usage: claude-codex-relay channels [--json] [--detail]

Prints the channel names, one per line; --json prints {\"channels\": [...]}.
--detail: one line per channel with its newest id, message count and who is listening now
(by name where the listener gave one).

Example:
  claude-codex-relay channels --url http://127.0.0.1:8010
";

const DELETE: &str = "\
Usage: claude-codex-relay delete [--json] (ID... | --target NAME)

Deletes the messages ID..., or with --target the whole channel NAME. Deleted messages leave
every page, search and open stream, and the relay's journal on disk; the channel archive log
keeps them. Needs the relay's main token, or with no token configured, a relay on this
machine. Every ID is checked before anything is deleted: one that is not a number deletes
nothing (exit 2). Prints `deleted #ID` for each message as it goes (or the channel and how many
messages went), so when one fails (an unknown id: exit 1) those before it are still listed;
--json prints the relay's answers.

Example:
  claude-codex-relay delete --target scratch
";

const EXPORT: &str = "\
Usage: claude-codex-relay export --target T [--since-id N] [--format md|jsonl]

Writes channel T (the messages after N, or all), oldest first, to standard output. md (the
default): a Markdown transcript, a heading `#id · sender · time` per message under its own
anchor (`<a id=\"m8\"></a>` for #8), a line naming the message it replies to (a link to its
anchor; plain `#N` when that message is not in the export: before N, or deleted), and the
text as written, code blocks intact (one it leaves open is closed). jsonl: one message per
line in the relay's journal shape; saved as messages.jsonl in an empty data_dir, a relay
starts with exactly these messages.

Example:
  claude-codex-relay export --target proj-x > proj-x.md
";

const WATCH: &str = "\
Usage: claude-codex-relay watch --target T [--from S]... [--ignore-sender S]... [--exec CMD]
         [--state FILE] [--since-id N] [--count N] [--timeout S] [--max-runs N] [--per S]
         [--as NAME] [--json | --full]

Follows channel T with the relay's blocking fetch and handles every new message once, in
order: prints it (like fetch), or with --exec runs `sh -c CMD` with the text on standard
input and RELAY_MESSAGE_ID, RELAY_SENDER, RELAY_TARGET, RELAY_URL (and CLAUDE_CODEX_URL,
CLAUDE_CODEX_TOKEN) in its environment; CMD's output passes through and status lines go to
standard error. A failing CMD is reported and its message still counts as handled.
  --from S           only messages from S (repeatable, or comma-separated: --from a,b)
  --ignore-sender S  never messages from S, e.g. your own (repeatable, or comma-separated)
  --state FILE       keeps the last handled id, replaced atomically after every message; a
                     restart resumes right after it
  --since-id N       where to start when FILE does not exist yet [default: after the newest
                     message at start]
  --as NAME          tell the relay that NAME is listening on T (shown by `channels
                     --detail`, the web page and list_channels)
  --count N          exit 0 after handling N messages
  --timeout S        stop after S seconds, also while the relay cannot be reached or CMD
                     runs: exit 0 if the --count messages were handled by then (without
                     --count: if any message was), else exit 6. A CMD still running then
                     gets SIGTERM (SIGKILL 5 s later); its message is not handled, and runs
                     again at the next start with --state
  --max-runs N --per S
                     loop guard: CMD runs at most N times in any S seconds [default 20 per
                     600]; the next one stops watch with exit 4 before running it, so a
                     restart handles that message first. --max-runs 0 turns the guard off.
A relay that is down, restarting or busy is retried with a delay doubling from 0.25 s to
10 s (until --timeout, if given, runs out). One that comes back without its history (a
memory store: ids start again at 1) is followed from its first message, saying so; a FILE
or --since-id beyond the channel's newest id is said at start, and watch goes on after the
newest message. SIGINT or SIGTERM ends watch at once (exit status 130 or 143 from the
shell) and sends SIGTERM to a CMD that is running; the state file is never torn, and the
interrupted message is run again at the next start.

Example:
  claude-codex-relay watch --target proj-x --from claude --state .codex/last_id \\
    --exec 'codex exec \"Review the packet on standard input\"'
";

const MCP: &str = "\
Usage: claude-codex-relay mcp [--listen C[,C...] [--as NAME] [--from S]... [--since-id N]]

A stdio MCP server for clients that spawn a command: JSON-RPC lines on standard input and
output (notes on standard error), forwarded to the relay's /mcp with the relay's tools and
channel resources unchanged. It survives relay restarts (tool calls answer isError
meanwhile; a relay that refuses the token or a request says so instead) and ends when
standard input ends, once every request it read is answered.
  --listen C,...   push every new message on these channels as a
                   notifications/claude/channel event (capability
                   experimental[\"claude/channel\"]), once each, in order
  --as NAME        your own name: your messages are not pushed back, and the relay lists
                   NAME as listening on the channels
  --from S         only messages from S (repeatable, or comma-separated)
  --since-id N     push from after message N [default: the newest at start]

Example:
  claude mcp add relay -- claude-codex-relay mcp --listen proj-x --as claude
";

const SETUP: &str = "\
Usage: claude-codex-relay setup claude|codex|gemini [--listen C[,C...] [--as NAME]] [--apply]

Prints the exact configuration that connects a client to the relay (--url, --token): the
`claude mcp add` / `gemini mcp add` line, or for Codex the `codex mcp add` line and its
config.toml table (with a token, both name CLAUDE_CODEX_TOKEN, the variable Codex reads the
token from). --listen C (Claude Code only) configures the stdio bridge with `--listen
C --as NAME` (default claude) and prints the line that starts Claude Code with the channel.
--apply puts it in place and says what changed: runs `mcp remove` then `mcp add` for claude
and gemini (their entry named relay is replaced whole); for codex adds [mcp_servers.relay]
to $CODEX_HOME/config.toml (default ~/.codex/config.toml), or sets url (and with a token
bearer_token_env_var) in the table there, keeping its other keys and sub-tables (a timeout,
[mcp_servers.relay.env]) and the rest of the file; a table that starts the server as a
command loses command, args, env, env_vars and cwd, which Codex refuses beside url. A file
that defines the relay server otherwise (`relay = {...}` under [mcp_servers], dotted keys)
is left alone (exit 5) with what to change.

Example:
  claude-codex-relay setup codex --apply
";

const COMMON: &str = "\
Every client command takes:
  --url URL          the relay [env CLAUDE_CODEX_URL, unless blank; default
                     http://127.0.0.1:8010]; its MCP URL (ending in /mcp) names it too
  --token TOKEN      bearer token [env CLAUDE_CODEX_TOKEN]: visible ASCII, no spaces;
                     --token-file FILE reads it from a file, which must not be empty
                     (neither shows it to `ps`)
  --help, -h         this help
  --                 ends the options; what follows are words (post's text)

Exit codes:
  0  success
  1  the relay answered an error (4xx/5xx: bad field, token refused, too large, disk full)
     or something that is not the relay's API
  2  usage error, or a state file that does not hold a message id
  3  the relay is unreachable (connection refused, host not found, timed out)
  4  watch: the loop guard stopped it
  5  a local failure: reading standard input, a state file that cannot be read or written
     (a folder, no permission; checked before watch begins), starting CMD
  6  post --await or watch --timeout: the time ran out before the message came
";

/// The sections of the commands, in the order `all` shows them.
const COMMANDS: [(&str, &str); 8] = [
    ("post", POST),
    ("fetch", FETCH),
    ("channels", CHANNELS),
    ("watch", WATCH),
    ("mcp", MCP),
    ("setup", SETUP),
    ("delete", DELETE),
    ("export", EXPORT),
];

/// Every command of the binary: the relay itself, then the client's.
const ALL_COMMANDS: [&str; 9] = [
    "serve", "post", "fetch", "channels", "watch", "delete", "export", "mcp", "setup",
];

/// Whether `name` is a client command, with a help section of its own.
pub(super) fn is_command(name: &str) -> bool {
    COMMANDS.iter().any(|(n, _)| *n == name)
}

/// What to say of a command the binary does not know: the closest known one when it is
/// likely a typo (`fecth`), and the list of commands.
pub(super) fn unknown_command(word: &str) -> String {
    let closest = crate::suggest::closest(word, ALL_COMMANDS)
        .map_or_else(|| ".".to_string(), |c| format!("; did you mean {c}?"));
    format!(
        "unknown command {word:?}{closest} The commands are {} (`claude-codex-relay --help` shows them all)",
        ALL_COMMANDS.join(", ")
    )
}

/// Help for one command, then the options every command takes and the exit codes.
pub(super) fn command(name: &str) -> String {
    let section = COMMANDS
        .iter()
        .find(|(n, _)| *n == name)
        .map_or("", |(_, text)| text);
    format!("{section}\n{COMMON}")
}

/// Help for every command.
pub(super) fn all() -> String {
    let mut text = String::from(
        "Client commands (talk to a running relay over HTTP; no curl or jq needed):\n\n",
    );
    for (_, section) in COMMANDS {
        text.push_str(section);
        text.push('\n');
    }
    text.push_str(COMMON);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mistyped_command_gets_the_closest_and_the_list() {
        for (typo, meant) in [
            ("fecth", "fetch"),
            ("wacth", "watch"),
            ("chanels", "channels"),
            ("serv", "serve"),
        ] {
            let said = unknown_command(typo);
            assert!(said.contains(&format!("did you mean {meant}?")), "{said}");
            assert!(said.contains("post, fetch, channels"), "{said}");
        }
        let far = unknown_command("teleport");
        assert!(!far.contains("did you mean"), "{far}");
        assert!(far.contains("serve, post"), "{far}");
    }
}
