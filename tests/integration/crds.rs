//! The checked-in `crds/` must be exactly what the Rust types generate, and must carry the CEL
//! rules and printer columns users rely on.

use std::path::Path;

use serin::crd;

#[test]
fn checked_in_crds_match_the_types() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut names = Vec::new();
    for def in crd::all_crds() {
        let name = def.metadata.name.clone().expect("CRD has a name");
        let generated = crd::render_crd_yaml(&def).expect("renders");
        let file = dir.join(format!("{name}.yaml"));
        let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
        assert!(
            generated == checked_in,
            "{} is out of date with the Rust types; regenerate with `cargo run -- crds --output-dir crds`",
            file.display()
        );
        names.push(format!("{name}.yaml"));
    }
    let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    on_disk.sort();
    names.sort();
    let listed = kustomization_resources(&dir.join("kustomization.yaml"));
    assert_eq!(listed, names, "crds/kustomization.yaml lists exactly the generated CRDs");
    names.push("kustomization.yaml".into());
    names.sort();
    assert_eq!(on_disk, names, "crds/ holds exactly the generated CRDs and their kustomization");

    // The Helm chart carries copies (Helm cannot read files outside the chart).
    let chart = Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/chart/serin/crds");
    let mut copies: Vec<String> = std::fs::read_dir(&chart)
        .expect("deploy/chart/serin/crds exists")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    copies.sort();
    names.retain(|n| n != "kustomization.yaml");
    assert_eq!(copies, names, "deploy/chart/serin/crds holds exactly the generated CRDs");
    for name in &names {
        assert!(
            std::fs::read(chart.join(name)).ok() == std::fs::read(dir.join(name)).ok(),
            "deploy/chart/serin/crds/{name} differs from crds/{name}; regenerate with \
             `cargo run -- crds --output-dir deploy/chart/serin/crds`"
        );
    }
}

/// The `resources` of a kustomization file, sorted.
fn kustomization_resources(file: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    let doc: serde_json::Value = serde_norway::from_str(&text).expect("kustomization parses");
    let mut resources: Vec<String> = doc["resources"]
        .as_array()
        .expect("resources list")
        .iter()
        .map(|r| r.as_str().expect("resource path").to_string())
        .collect();
    resources.sort();
    resources
}

#[test]
fn canary_crd_carries_cel_rules_and_columns() {
    let yaml = crd::render_crd_yaml(&crd::all_crds()[0]).expect("renders");
    for rule in [
        "self.maxWeight >= self.stepWeight",
        "[has(self.stepWeight), has(self.stepWeights), has(self.iterations)].filter(x, x).size() == 1",
        "self.min <= self.max",
        "provider nginx needs ingressRef",
        "primaryCookieName must differ from cookieName",
    ] {
        assert!(yaml.contains(rule), "CEL rule missing: {rule}");
    }
    for column in
        ["name: Status", "name: Weight", "name: FailedChecks", "name: Revision", "name: LastTransitionTime"]
    {
        assert!(yaml.contains(column), "printer column missing: {column}");
    }
    assert!(yaml.contains("shortNames:\n    - canary"));
    assert!(yaml.contains("subresources:\n      status: {}"));
}

#[test]
fn checked_in_reference_matches_the_types() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/crd-reference.md");
    let checked_in = std::fs::read_to_string(&file).unwrap_or_default();
    assert!(
        checked_in == crd::reference::markdown(),
        "{} is out of date; regenerate with `cargo run -- crds --reference > docs/crd-reference.md`",
        file.display()
    );
}
