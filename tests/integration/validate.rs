//! `serin validate` against the fixture folders: Flagger's documented examples (apiVersion
//! changed) must pass and round-trip through the Rust types without losing a field; every
//! broken manifest must produce exactly the lines its `# expect:` comments list.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use serin::crd::{AlertProvider, Canary, MetricTemplate};
use serin::manifest::{self, load};

fn fixtures(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(dir)
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("fixture dir exists")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

/// JSON equality where `99` and `99.0` are the same number.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        (Value::Array(x), Value::Array(y)) => x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b)),
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn round_trip<T: serde::de::DeserializeOwned + serde::Serialize>(value: &Value) -> Value {
    let typed: T = serde_json::from_value(value.clone()).expect("deserializes");
    serde_json::to_value(&typed).expect("serializes")
}

#[test]
fn flagger_examples_validate_and_round_trip() {
    let dir = fixtures("flagger-compat");
    let report = manifest::validate_paths(std::slice::from_ref(&dir), None);
    let lines: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(lines.is_empty(), "unexpected problems:\n{}", lines.join("\n"));
    assert!(report.checked >= 20, "only {} documents checked", report.checked);

    let mut kinds = std::collections::BTreeSet::new();
    for file in yaml_files(&dir) {
        let text = std::fs::read_to_string(&file).expect("readable");
        for doc in load::parse_documents(&text) {
            let value = doc.value.expect("valid YAML");
            let kind = value["kind"].as_str().expect("kind").to_string();
            let back = match kind.as_str() {
                "Canary" => round_trip::<Canary>(&value),
                "MetricTemplate" => round_trip::<MetricTemplate>(&value),
                "AlertProvider" => round_trip::<AlertProvider>(&value),
                other => panic!("unexpected kind {other}"),
            };
            assert!(
                same(&value, &back),
                "{}:{} lost or changed a field:\nin:  {value}\nout: {back}",
                file.display(),
                doc.index
            );
            kinds.insert(kind);
        }
    }
    assert_eq!(kinds.len(), 3, "every kind is covered: {kinds:?}");
}

fn expected_lines(file: &Path) -> Vec<String> {
    std::fs::read_to_string(file)
        .expect("readable")
        .lines()
        .filter_map(|l| l.strip_prefix("# expect: "))
        .map(|l| format!("{}:1: {l}", file.display()))
        .collect()
}

#[test]
fn each_broken_manifest_reports_exactly_its_mistakes() {
    let files = yaml_files(&fixtures("invalid"));
    assert!(files.len() >= 15, "at least 15 distinct mistakes, found {}", files.len());
    for file in files {
        let want = expected_lines(&file);
        assert!(!want.is_empty(), "{} has no '# expect:' line", file.display());
        let report = manifest::validate_paths(std::slice::from_ref(&file), None);
        let got: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
        assert_eq!(got, want, "{}", file.display());
    }
}

#[test]
fn cli_exit_codes_follow_the_findings() {
    let bin = env!("CARGO_BIN_EXE_serin");
    let ok = Command::new(bin).arg("validate").arg(fixtures("flagger-compat")).output().expect("runs");
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    assert!(ok.stdout.is_empty());

    let bad = Command::new(bin).arg("validate").arg(fixtures("invalid")).output().expect("runs");
    assert_eq!(bad.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&bad.stdout);
    let files = yaml_files(&fixtures("invalid"));
    let want: usize = files.iter().map(|f| expected_lines(f).len()).sum();
    assert_eq!(stdout.lines().count(), want, "{stdout}");

    let missing = Command::new(bin).args(["validate", "/nonexistent/serin"]).output().expect("runs");
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(String::from_utf8_lossy(&missing.stdout), "/nonexistent/serin: no such file or directory\n");
}

#[test]
fn non_serin_documents_are_skipped_and_bad_yaml_is_reported() {
    let dir = tempdir();
    std::fs::write(
        dir.join("app.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: x\nspec: {replicas: 1}\n---\napiVersion: serin.dev/v1alpha1\nkind: Rollout\nmetadata:\n  name: x\n",
    )
    .expect("write");
    std::fs::write(dir.join("broken.yml"), "a: [\n").expect("write");
    std::fs::write(dir.join("notes.txt"), "not a manifest").expect("write");
    let report = manifest::validate_paths(std::slice::from_ref(&dir), None);
    let got: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert_eq!(got.len(), 2, "{got:?}");
    assert!(got[0].ends_with("app.yaml:2: kind: unknown kind \"Rollout\"; serin.dev/v1alpha1 has Canary, MetricTemplate and AlertProvider"), "{}", got[0]);
    assert!(got[1].contains("broken.yml:1: invalid YAML"), "{}", got[1]);
    std::fs::remove_dir_all(dir).expect("cleanup");
}

fn tempdir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("serin-validate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    dir
}
