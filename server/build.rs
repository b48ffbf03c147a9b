//! Embeds `migrations/{sqlite,postgres}/*.sql` into the server as `(version, description,
//! sql)` lists (`$OUT_DIR/migrations.rs`, read by `src/db.rs`), named as sqlx's `migrate!`
//! macro names them: `<version>_<description>.sql`, underscores in the description read as
//! spaces. Adding a migration is adding a file, as with the macro.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

fn main() {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap()).join("../migrations");
    let mut out = String::new();
    for (dialect, constant) in [("sqlite", "SQLITE"), ("postgres", "POSTGRES")] {
        let dir = root.join(dialect);
        println!("cargo:rerun-if-changed={}", dir.display());
        writeln!(out, "pub const {constant}: &[(i64, &str, &str)] = &[").unwrap();
        for (version, description, path) in migrations(&dir) {
            writeln!(
                out,
                "    ({version}, {description:?}, include_str!({:?})),",
                path.display().to_string()
            )
            .unwrap();
        }
        writeln!(out, "];").unwrap();
    }
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(&dest, out).unwrap_or_else(|e| panic!("cannot write {}: {e}", dest.display()));
}

/// The migrations of one dialect, by version; panics (failing the build) with the file and the
/// fix on anything sqlx would refuse or read differently.
fn migrations(dir: &Path) -> Vec<(i64, String, PathBuf)> {
    let entries = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read the migrations folder {}: {e}", dir.display()));
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        let Some((version, description)) = stem.split_once('_') else {
            panic!(
                "migration {}: name it <version>_<description>.sql",
                path.display()
            );
        };
        if description.ends_with(".up") || description.ends_with(".down") {
            panic!(
                "migration {}: reversible (.up/.down) migrations are not supported; \
                 write a plain <version>_<description>.sql",
                path.display()
            );
        }
        let version: i64 = version.parse().unwrap_or_else(|_| {
            panic!(
                "migration {}: the part before the first `_` must be an integer version",
                path.display()
            )
        });
        let path = path
            .canonicalize()
            .unwrap_or_else(|e| panic!("migration {}: {e}", path.display()));
        println!("cargo:rerun-if-changed={}", path.display());
        found.push((version, description.replace('_', " "), path));
    }
    found.sort();
    if let Some(w) = found.windows(2).find(|w| w[0].0 == w[1].0) {
        panic!(
            "migrations {} and {} share version {}: give each file its own",
            w[0].2.display(),
            w[1].2.display(),
            w[0].0
        );
    }
    found
}
