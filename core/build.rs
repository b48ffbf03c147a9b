//! Decompresses the embedded gene tables (`assets/*.tsv.gz`) into `OUT_DIR` for native builds,
//! which embed the plain text: inflating 5.5 MB at every start was a third of a small file's
//! tokenization time. The browser build keeps the gzip'd bytes (a smaller download) and inflates
//! them once, on first use.

use std::io::Read;
use std::path::Path;

const TABLES: [&str; 3] = [
    "human_genes.tsv",
    "mouse_genes.tsv",
    "human_mouse_orthologs.tsv",
];

fn main() {
    for t in TABLES {
        println!("cargo:rerun-if-changed=assets/{t}.gz");
    }
    if std::env::var("CARGO_CFG_TARGET_ARCH").as_deref() == Ok("wasm32") {
        return;
    }
    let out = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    for t in TABLES {
        let src = Path::new("assets").join(format!("{t}.gz"));
        let gz = std::fs::read(&src).unwrap_or_else(|e| panic!("reading {}: {e}", src.display()));
        let mut text = String::new();
        flate2::read::MultiGzDecoder::new(gz.as_slice())
            .read_to_string(&mut text)
            .unwrap_or_else(|e| panic!("{} is not gzip'd UTF-8 text: {e}", src.display()));
        let dst = Path::new(&out).join(t);
        std::fs::write(&dst, text).unwrap_or_else(|e| panic!("writing {}: {e}", dst.display()));
    }
}
