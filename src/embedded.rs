//! Files under `assets/` compiled into the binary gzip-compressed: `build.rs` compresses every
//! one into the build's output folder, `embedded!` takes a file's compressed bytes from there,
//! and `inflate` gives back the file itself. The web page's files (`ui`), the OpenAPI document
//! (`http::apidoc`) and the MCP tool list (`mcp::tools`) are embedded so: sent as they are to a
//! client that takes gzip, inflated for one that does not or when read, and carried in the
//! binary at their compressed size.

/// The gzip-compressed bytes of `assets/<file>`, as `build.rs` wrote them.
macro_rules! embedded {
    ($file:literal) => {
        include_bytes!(concat!(env!("OUT_DIR"), "/assets/", $file, ".gz"))
    };
}
pub(crate) use embedded;

/// The file whose gzip-compressed bytes `embedded!` gave.
pub(crate) fn inflate(gzip: &[u8]) -> Vec<u8> {
    // `build.rs` writes a ten-byte header and an eight-byte trailer around the deflate data.
    let deflated = &gzip[10..gzip.len() - 8];
    miniz_oxide::inflate::decompress_to_vec(deflated).expect("build.rs compresses every file whole")
}
