//! Regenerates `core/assets/*.tsv.gz` from the developer data bundle.
//!
//! `cargo run -p genecompass-core --example build_gene_assets -- /work/shared/data/genes core/assets`

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (genes, out) = match args.as_slice() {
        [_, g, o] => (g.clone(), o.clone()),
        _ => {
            eprintln!("usage: build_gene_assets <shared/data/genes> <core/assets>");
            std::process::exit(2);
        }
    };
    match genecompass_core::tokenize::gene_tables::build_assets(genes.as_ref(), out.as_ref()) {
        Ok(files) => {
            for (name, bytes) in files {
                println!("{name}\t{bytes} bytes");
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    }
}
