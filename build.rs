//! Compresses the files the binary embeds: every file under `assets/` that it carries (the web
//! page's HTML, scripts, styles and icon; the OpenAPI document and the MCP tool list, JSON) is
//! written gzip-compressed to `OUT_DIR/assets/`, where `src/embedded.rs` includes it. They are
//! then carried, and sent to clients that take gzip, at about a third of their size;
//! `src/embedded.rs` inflates them for the rare client that does not, and when they are read. The gzip framing
//! (a fixed header without name or time, the CRC-32 and length after the data) is written here
//! around the deflate stream, so the output depends only on the input.
//!
//! It also packs the binary's relative relocations (`DT_RELR`) where the toolchain can: a
//! position-independent executable keeps, for every pointer in its read-only data, a dynamic
//! relocation the loader applies at start; as plain records they are 24 bytes each, 70 KB of
//! the binary, and packed they take under a kilobyte, while the binary stays position-independent
//! (its address still randomised). The linker flag is used only when a probe linked with it
//! runs here: an older linker or C library (before binutils 2.38, glibc 2.36) builds the plain
//! form.

use std::fs;
use std::path::{Path, PathBuf};

/// The kinds of file embedded.
const EMBEDDED: &[&str] = &["html", "js", "css", "svg", "json"];

fn main() {
    println!("cargo:rerun-if-changed=assets");
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    compress_dir(Path::new("assets"), &out.join("assets"));
    if packs_relocations(&out.join("relr-probe")) {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether a program linked with packed relocations, by the linker cargo uses, runs on this
/// machine. Only a native Linux build is probed: a cross build's probe could not run here.
fn packs_relocations(dir: &Path) -> bool {
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    if var("TARGET") != var("HOST") || !var("TARGET").contains("linux-gnu") {
        return false;
    }
    let linker = std::env::var_os("RUSTC_LINKER").unwrap_or_else(|| "cc".into());
    let (source, program) = (dir.join("probe.c"), dir.join("probe"));
    // A pointer to a static needs a relative relocation in a position-independent executable.
    let written = fs::create_dir_all(dir).and_then(|()| {
        fs::write(
            &source,
            "static int x = 7;\nint *p = &x;\nint main(void) { return *p - 7; }\n",
        )
    });
    let linked = written.is_ok()
        && std::process::Command::new(linker)
            .args(["-fPIE", "-pie", "-Wl,-z,pack-relative-relocs", "-o"])
            .arg(&program)
            .arg(&source)
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
    linked
        && std::process::Command::new(&program)
            .status()
            .is_ok_and(|s| s.success())
}

/// Writes `FILE.gz` under `to` for every embedded file under `from`, keeping the folders.
fn compress_dir(from: &Path, to: &Path) {
    let mut entries: Vec<_> = fs::read_dir(from)
        .expect("read assets/")
        .map(|e| e.expect("read assets/").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().expect("a file name");
        if path.is_dir() {
            compress_dir(&path, &to.join(name));
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| EMBEDDED.contains(&e))
        {
            fs::create_dir_all(to).expect("create the compressed assets' folder");
            let data = fs::read(&path).expect("read an asset");
            let mut gz_name = name.to_owned();
            gz_name.push(".gz");
            fs::write(to.join(gz_name), gzip(&data)).expect("write a compressed asset");
        }
    }
}

/// `data` as a gzip member (RFC 1952) at the best compression.
fn gzip(data: &[u8]) -> Vec<u8> {
    // Magic, deflate, no flags, no time, best compression, unknown system.
    let mut out = vec![0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 0xff];
    out.extend(miniz_oxide::deflate::compress_to_vec(data, 10));
    out.extend(crc32(data).to_le_bytes());
    out.extend((data.len() as u32).to_le_bytes());
    out
}

/// CRC-32 (IEEE, reflected), bit by bit: slow, and fast enough for a few hundred kilobytes.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in data {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
