//! `windlass import podman`: `podman container inspect` JSON (the fixture in
//! `tests/podman/inspect.json` is hand-written with the field names of
//! Podman's `libpod/define/container_inspect.go`) → manifests, read from a
//! file or from stdin, no running Podman needed.

mod common;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture() -> PathBuf {
    common::repo_root().join("generator/tests/podman/inspect.json")
}

fn windlass(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_windlass"))
        .env_clear()
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
    drop(input);
    child.wait_with_output().unwrap()
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn toml(p: &Path) -> toml_edit::DocumentMut {
    std::fs::read_to_string(p).unwrap().parse().unwrap()
}

fn strs(v: &toml_edit::Item) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn inspect_json_becomes_manifests_that_validate_and_generate() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let report = tmp.path().join("report.json");
    let o = windlass(
        &[
            "import",
            "podman",
            s(&fixture()),
            "-o",
            s(&fleet),
            "--report",
            s(&report),
        ],
        None,
    );
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "{stderr}");

    let web = toml(&fleet.join("web-front.toml"));
    let c = &web["container"];
    assert_eq!(c["image"].as_str(), Some("docker.io/library/nginx:1.27"));
    assert_eq!(strs(&c["entrypoint"]), ["/docker-entrypoint.sh"]);
    assert_eq!(strs(&c["command"]), ["nginx", "-g", "daemon off;"]);
    assert_eq!(c["user"].as_str(), Some("101:101"));
    assert_eq!(strs(&c["ports"]), ["127.0.0.1:8443:443/tcp", "8080:80/tcp"]);
    assert_eq!(
        strs(&c["volumes"]),
        [
            "web-content:/usr/share/nginx/html",
            "/srv/web/nginx.conf:/etc/nginx/nginx.conf:ro",
            "/srv/web/certs:/certs:Z"
        ]
    );
    assert_eq!(strs(&c["networks"]), ["frontnet"]);
    // The app is `web-front`; the container keeps its name.
    assert_eq!(c["container_name"].as_str(), Some("web_front"));
    assert!(metrics_has_no_container_name(&fleet));
    assert_eq!(c["memory"].as_str(), Some("256Mi"));
    assert_eq!(c["cpus"].as_float(), Some(1.5));
    assert_eq!(c["restart"].as_str(), Some("always"));
    assert_eq!(c["stop_timeout"].as_str(), Some("30s"));
    assert_eq!(c["auto_update"].as_str(), Some("registry"));
    assert_eq!(
        c["env"]["SITE"].as_str(),
        Some("shop \"main\" $HOME 100%"),
        "values are carried byte for byte"
    );
    assert!(c["env"].get("container").is_none() && c["env"].get("HOSTNAME").is_none());
    assert!(c["labels"].get("PODMAN_SYSTEMD_UNIT").is_none());
    assert_eq!(c["labels"]["com.example.tier"].as_str(), Some("front"));
    assert_eq!(
        strs(&web["health"]["cmd"]),
        ["curl", "-fsS", "http://localhost/"]
    );
    assert_eq!(web["health"]["retries"].as_integer(), Some(3));

    let metrics = toml(&fleet.join("metrics.toml"));
    assert_eq!(strs(&metrics["container"]["networks"]), ["host"]);
    assert_eq!(
        strs(&metrics["health"]["cmd"]),
        [
            "/bin/sh",
            "-c",
            "wget -qO- http://localhost:9100/metrics >/dev/null"
        ]
    );
    assert!(metrics["container"].get("labels").is_none());

    let fleet_file = std::fs::read_to_string(fleet.join("windlass.toml")).unwrap();
    assert!(fleet_file.contains("[networks.frontnet]"));
    assert!(fleet_file.contains("[volumes.web-content]"));

    // What did not carry, by container and JSON key.
    let r: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let has = |file: &str, key: &str, action: &str| {
        r["entries"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["file"] == file && e["key"] == key && e["action"] == action)
    };
    assert!(has("web_front", "HostConfig.CapAdd", "dropped"));
    // The SELinux relabelling of Mounts[2] (`Mode: Z`) is carried.
    assert!(!has("web_front", "Mounts[2]", "dropped"));
    assert!(has(
        "web_front",
        "HostConfig.PortBindings.9000/tcp",
        "dropped"
    ));
    assert!(has("web_front", "Config.Env", "changed"));
    assert!(has("metrics", "HostConfig.Privileged", "dropped"));
    assert!(has("metrics", "HostConfig.Devices", "dropped"));
    assert!(has("metrics", "Mounts[0]", "dropped"));
    assert!(has(
        "metrics",
        "HostConfig.RestartPolicy.MaximumRetryCount",
        "dropped"
    ));
    assert!(has("metrics", "Config.Labels.io.windlass.app", "dropped"));

    let out = tmp.path().join("out");
    let o = windlass(
        &["generate", s(&fleet), "-o", s(&out), "--target", "quadlet"],
        None,
    );
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let unit = std::fs::read_to_string(out.join("quadlet/web-front.container")).unwrap();
    assert!(unit.contains("Environment=\"SITE=shop \\\"main\\\" $$HOME 100%%\""));
}

#[test]
fn stdin_is_read_when_no_file_is_given() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let text = std::fs::read_to_string(fixture()).unwrap();
    let o = windlass(&["import", "podman", "-o", s(&fleet)], Some(&text));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(fleet.join("web-front.toml").is_file());
    let o = windlass(
        &["import", "podman", "-", "-o", s(&tmp.path().join("f2"))],
        Some(&text),
    );
    assert!(o.status.success());
}

#[test]
fn bad_json_is_an_error_and_nothing_is_written() {
    let tmp = tempfile::tempdir().unwrap();
    let fleet = tmp.path().join("fleet");
    let o = windlass(&["import", "podman", "-o", s(&fleet)], Some("[{\"Name\": "));
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("stdin: not JSON"));
    let o = windlass(
        &["import", "podman", "-o", s(&fleet), "--strict"],
        Some(&std::fs::read_to_string(fixture()).unwrap()),
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(!fleet.exists());
}

/// `metrics` is already a valid app name: no `container_name`.
fn metrics_has_no_container_name(fleet: &Path) -> bool {
    let m = std::fs::read_to_string(fleet.join("metrics.toml")).unwrap();
    !m.contains("container_name")
}
