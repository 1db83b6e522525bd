//! Compiles the vendored Kubernetes .proto files into a descriptor set the crate embeds.

use std::path::{Path, PathBuf};

/// Every `generated.proto` under `dir`, sorted so the descriptor set is reproducible.
fn proto_files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            proto_files(&path, out)?;
        } else if path.extension().is_some_and(|e| e == "proto") {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = Path::new("proto");
    println!("cargo:rerun-if-changed=proto");
    let mut files = Vec::new();
    proto_files(root, &mut files)?;
    files.sort();
    let mut compiler = protox::Compiler::new([root])?;
    compiler.include_imports(true).include_source_info(false);
    compiler.open_files(&files)?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?).join("k8s.fds");
    std::fs::write(out, compiler.encode_file_descriptor_set())?;
    Ok(())
}
