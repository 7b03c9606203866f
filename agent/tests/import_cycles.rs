//! The agent's modules import each other without a cycle: D-Bus call →
//! operation → platform → systemd, with durable writes, records and the
//! store as leaves, as `tools/import-cycles` sees them.

use std::path::Path;
use std::process::Command;

#[test]
fn agent_modules_import_each_other_without_a_cycle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new("python3")
        .arg(root.join("tools/import-cycles"))
        .arg(root.join("agent/src"))
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
