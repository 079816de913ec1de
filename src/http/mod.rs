//! Everything that speaks HTTP: the HTTP library and its limits (`server`), the request and
//! reply types (`exchange`), the Host/Origin/token checks (`guard`), one match from route to
//! handler (`router`), the REST API (`rest`), server-sent event framing and the message stream
//! (`events`), the MCP transports (`streamable` at `/mcp`, `legacy` at `/sse` + `/messages`),
//! and the API description (`apidoc`). Handlers get the shared `App` and an `Incoming` request
//! and return `Result<Reply, Error>`.

pub(crate) mod apidoc;
pub(crate) mod events;
pub(crate) mod exchange;
pub(crate) mod guard;
pub(crate) mod legacy;
pub(crate) mod rest;
pub(crate) mod router;
pub(crate) mod server;
pub(crate) mod streamable;
