//! The generator's modules import each other without a cycle (leaves at
//! the bottom: one-way data flow, manifest → model → emit → output), as
//! `tools/import-cycles` sees them.

mod common;

use std::process::Command;

#[test]
fn generator_modules_import_each_other_without_a_cycle() {
    let root = common::repo_root();
    let out = Command::new("python3")
        .arg(root.join("tools/import-cycles"))
        .arg(root.join("generator/src"))
        .output()
        .expect("python3 runs tools/import-cycles");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{report}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("no cycle"), "{report}");
}
