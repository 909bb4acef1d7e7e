//! Finding manifest files and splitting them into documents.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// One document of a manifest file.
#[derive(Debug)]
pub struct Document {
    /// 1-based position of the document in its file.
    pub index: usize,
    /// The parsed document, or why it could not be parsed.
    pub value: Result<Value, String>,
}

/// Whether a path names a manifest file Serin reads.
fn is_manifest(path: &Path) -> bool {
    matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json"))
}

/// Expands files and directories into a sorted list of manifest files; a path that does not
/// exist or cannot be read is returned as a problem.
pub fn collect_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<(PathBuf, String)>) {
    let mut files = Vec::new();
    let mut problems = Vec::new();
    for path in paths {
        if path.is_file() {
            files.push(path.clone());
            continue;
        }
        if !path.is_dir() {
            problems.push((path.clone(), "no such file or directory".to_string()));
            continue;
        }
        for entry in walkdir::WalkDir::new(path).sort_by_file_name() {
            match entry {
                Ok(entry) if entry.file_type().is_file() && is_manifest(entry.path()) => {
                    files.push(entry.into_path());
                }
                Ok(_) => {}
                Err(e) => problems.push((path.clone(), e.to_string())),
            }
        }
    }
    (files, problems)
}

/// Splits a YAML (or JSON) text into documents, skipping empty ones. Parsing stops at the
/// first malformed document, which is returned with its error.
pub fn parse_documents(text: &str) -> Vec<Document> {
    let mut documents = Vec::new();
    for (i, doc) in serde_norway::Deserializer::from_str(text).enumerate() {
        match Value::deserialize(doc) {
            Ok(Value::Null) => {}
            Ok(value) => documents.push(Document { index: i + 1, value: Ok(value) }),
            Err(e) => {
                documents.push(Document { index: i + 1, value: Err(format!("invalid YAML: {e}")) });
                break;
            }
        }
    }
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_multi_document_yaml() {
        let docs = parse_documents("---\na: 1\n---\n---\nb: [x]\n");
        let values: Vec<_> = docs.iter().map(|d| (d.index, d.value.clone().ok())).collect();
        assert_eq!(
            values,
            vec![(1, Some(serde_json::json!({"a": 1}))), (3, Some(serde_json::json!({"b": ["x"]})))]
        );
    }

    #[test]
    fn reports_malformed_yaml_with_its_position() {
        let docs = parse_documents("a: 1\n---\nb: [unclosed\n");
        assert_eq!(docs.len(), 2);
        let err = docs[1].value.as_ref().unwrap_err();
        assert!(err.starts_with("invalid YAML:") && err.contains("line"), "{err}");
    }

    #[test]
    fn parses_json() {
        let docs = parse_documents(r#"{"kind": "Canary"}"#);
        assert_eq!(docs[0].value, Ok(serde_json::json!({"kind": "Canary"})));
    }
}
