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
    assert_eq!(on_disk, names, "crds/ holds exactly the generated CRDs");

    // The kustomize base and the Helm chart carry copies (neither reads files outside itself).
    for copy in ["deploy/base/crds", "deploy/chart/serin/crds"] {
        let copy_dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(copy);
        let mut copies: Vec<String> = std::fs::read_dir(&copy_dir)
            .unwrap_or_else(|e| panic!("{copy}: {e}"))
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        copies.sort();
        assert_eq!(copies, names, "{copy} holds exactly the generated CRDs");
        for name in &names {
            assert!(
                std::fs::read(copy_dir.join(name)).ok() == std::fs::read(dir.join(name)).ok(),
                "{copy}/{name} differs from crds/{name}; regenerate with `cargo run -- crds --output-dir {copy}`"
            );
        }
    }
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
