//! The builtin MetricTemplates under `analysis/` pass `serin validate` (the same check users'
//! CI runs), through the library and through the real binary, which must print nothing.

use std::path::Path;
use std::process::Command;

use serin::manifest;

#[test]
fn builtin_templates_pass_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("analysis");
    let report = manifest::validate_paths(std::slice::from_ref(&dir), None);
    let problems: Vec<String> = report.problems.iter().map(ToString::to_string).collect();
    assert!(problems.is_empty(), "{problems:#?}");
    assert_eq!(report.checked, serin::analysis::builtin::all().count());

    let out =
        Command::new(env!("CARGO_BIN_EXE_serin")).arg("validate").arg(&dir).output().expect("run serin");
    assert!(out.status.success(), "serin validate analysis/ failed");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}
