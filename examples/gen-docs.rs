//! Regenerates `man/` and `completions/` from the tools' clap definitions:
//! `cargo run --example gen-docs`.

use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for file in measpipe::docs::generate(measpipe::tools::ALL) {
        let path = root.join(&file.path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(&path, &file.content)?;
        println!("{}", file.path.display());
    }
    Ok(())
}
