//! Embeds every `statemachine/*.asl.json` of the project (template.yaml may reference any).

use std::path::Path;

fn main() {
    // Read when the script runs, not when it was compiled: a build script binary may be reused
    // from another checkout sharing the target directory.
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let dir = Path::new(&manifest).join("../../statemachine");
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("statemachine/ is readable")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".asl.json"))
        .collect();
    files.sort();
    let mut code = String::from(
        "/// Every `statemachine/*.asl.json`: (file name, text).\npub const STATE_MACHINE_FILES: &[(&str, &str)] = &[\n",
    );
    for f in &files {
        let path = dir.join(f).canonicalize().expect("a state machine file");
        println!("cargo:rerun-if-changed={}", path.display());
        code.push_str(&format!(
            "    ({f:?}, include_str!({:?})),\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("statemachines.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
