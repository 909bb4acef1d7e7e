//! Opening the pull request (GitHub) or merge request (GitLab) for a pushed revert branch,
//! through their REST APIs with a token. An existing open request for the same branch is
//! found and returned, so a retry never opens a second one.
//!
//! Endpoints used:
//! - GitHub: `POST {api}/repos/{owner}/{repo}/pulls` (201 → `html_url`); on 422 ("already
//!   exists") `GET {api}/repos/{owner}/{repo}/pulls?head={owner}:{branch}&state=open`.
//! - GitLab: `POST {api}/projects/{id}/merge_requests` (201 → `web_url`); on 409
//!   `GET {api}/projects/{id}/merge_requests?source_branch={branch}&state=opened`.

use std::time::Duration;

use serde_json::{Value, json};

/// Where to open pull requests.
#[derive(Clone, PartialEq, Eq)]
pub enum PullRequestApi {
    /// GitHub (or GitHub Enterprise).
    GitHub {
        /// API base URL (`https://api.github.com`).
        api_url: String,
        /// Repository owner.
        owner: String,
        /// Repository name.
        repo: String,
        /// Token with `pull_requests: write`.
        token: String,
    },
    /// GitLab.
    GitLab {
        /// API base URL (`https://gitlab.com/api/v4`).
        api_url: String,
        /// Project id or `group/project` path.
        project: String,
        /// Token with `api` scope.
        token: String,
    },
}

impl std::fmt::Debug for PullRequestApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PullRequestApi::GitHub { api_url, owner, repo, .. } => {
                write!(f, "GitHub({api_url}, {owner}/{repo}, token: <redacted>)")
            }
            PullRequestApi::GitLab { api_url, project, .. } => {
                write!(f, "GitLab({api_url}, {project}, token: <redacted>)")
            }
        }
    }
}

impl PullRequestApi {
    /// The API of a `github.com` or `gitlab.com` clone URL (HTTPS or SSH), if it is one.
    pub fn from_clone_url(url: &str, token: &str) -> Option<PullRequestApi> {
        let rest = url
            .strip_prefix("https://")
            .or_else(|| url.strip_prefix("ssh://git@"))
            .or_else(|| url.strip_prefix("git@"))?;
        let (host, path) = rest.split_once(['/', ':'])?;
        let path = path.trim_end_matches('/').trim_end_matches(".git");
        match host {
            "github.com" => {
                let (owner, repo) = path.split_once('/')?;
                Some(PullRequestApi::GitHub {
                    api_url: "https://api.github.com".into(),
                    owner: owner.into(),
                    repo: repo.into(),
                    token: token.into(),
                })
            }
            "gitlab.com" => Some(PullRequestApi::GitLab {
                api_url: "https://gitlab.com/api/v4".into(),
                project: path.into(),
                token: token.into(),
            }),
            _ => None,
        }
    }
}

/// Pull-request API failures.
#[derive(Debug, thiserror::Error)]
pub enum PullRequestError {
    /// The request could not be sent.
    #[error("pull request API {url}: {source}")]
    Http {
        /// The endpoint.
        url: String,
        /// The client error.
        #[source]
        source: reqwest::Error,
    },
    /// The API answered with an unexpected status or body.
    #[error("pull request API {url}: HTTP {status}: {body}")]
    Status {
        /// The endpoint.
        url: String,
        /// Status code.
        status: u16,
        /// Start of the body.
        body: String,
    },
}

fn encode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn send(request: reqwest::RequestBuilder, url: &str) -> Result<(u16, Value), PullRequestError> {
    let response = request.send().await.map_err(|e| PullRequestError::Http { url: url.into(), source: e })?;
    let status = response.status().as_u16();
    let bytes = response.bytes().await.map_err(|e| PullRequestError::Http { url: url.into(), source: e })?;
    let body = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()));
    Ok((status, body))
}

fn unexpected(url: &str, status: u16, body: &Value) -> PullRequestError {
    let text: String = body.to_string().chars().take(300).collect();
    PullRequestError::Status { url: url.into(), status, body: text }
}

fn first_url(url: &str, status: u16, body: &Value, field: &str) -> Result<String, PullRequestError> {
    body.as_array()
        .and_then(|a| a.first())
        .and_then(|pr| pr.get(field))
        .and_then(Value::as_str)
        .map(str::to_string)
        .ok_or_else(|| unexpected(url, status, body))
}

/// Opens (or finds) the pull request from `branch` into `base`; returns its web URL.
pub async fn open(
    api: &PullRequestApi,
    branch: &str,
    base: &str,
    title: &str,
    body: &str,
) -> Result<String, PullRequestError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .user_agent("serin")
        .build()
        .map_err(|e| PullRequestError::Http { url: String::new(), source: e })?;
    match api {
        PullRequestApi::GitHub { api_url, owner, repo, token } => {
            let url = format!("{}/repos/{owner}/{repo}/pulls", api_url.trim_end_matches('/'));
            let payload = json!({"title": title, "head": branch, "base": base, "body": body});
            let request = client
                .post(&url)
                .bearer_auth(token)
                .header("Accept", "application/vnd.github+json")
                .header("Content-Type", "application/json")
                .body(payload.to_string());
            let (status, reply) = send(request, &url).await?;
            match status {
                201 => reply
                    .get("html_url")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| unexpected(&url, status, &reply)),
                422 => {
                    let list = format!("{url}?head={}&state=open", encode(&format!("{owner}:{branch}")));
                    let request =
                        client.get(&list).bearer_auth(token).header("Accept", "application/vnd.github+json");
                    let (status, reply) = send(request, &list).await?;
                    first_url(&list, status, &reply, "html_url")
                }
                _ => Err(unexpected(&url, status, &reply)),
            }
        }
        PullRequestApi::GitLab { api_url, project, token } => {
            let url =
                format!("{}/projects/{}/merge_requests", api_url.trim_end_matches('/'), encode(project));
            let payload = json!({"source_branch": branch, "target_branch": base, "title": title, "description": body, "remove_source_branch": true});
            let request = client
                .post(&url)
                .header("PRIVATE-TOKEN", token)
                .header("Content-Type", "application/json")
                .body(payload.to_string());
            let (status, reply) = send(request, &url).await?;
            match status {
                201 => reply
                    .get("web_url")
                    .and_then(Value::as_str)
                    .map(str::to_string)
                    .ok_or_else(|| unexpected(&url, status, &reply)),
                409 => {
                    let list = format!("{url}?source_branch={}&state=opened", encode(branch));
                    let (status, reply) =
                        send(client.get(&list).header("PRIVATE-TOKEN", token), &list).await?;
                    first_url(&list, status, &reply, "web_url")
                }
                _ => Err(unexpected(&url, status, &reply)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apis_from_clone_urls() {
        let gh = PullRequestApi::from_clone_url("https://github.com/acme/fleet.git", "t").expect("github");
        assert!(
            matches!(gh, PullRequestApi::GitHub { ref owner, ref repo, .. } if owner == "acme" && repo == "fleet")
        );
        let gh = PullRequestApi::from_clone_url("git@github.com:acme/fleet.git", "t").expect("ssh github");
        assert!(matches!(gh, PullRequestApi::GitHub { ref repo, .. } if repo == "fleet"));
        let gl = PullRequestApi::from_clone_url("https://gitlab.com/group/sub/fleet", "t").expect("gitlab");
        assert!(matches!(gl, PullRequestApi::GitLab { ref project, .. } if project == "group/sub/fleet"));
        assert!(PullRequestApi::from_clone_url("https://git.example/x.git", "t").is_none());
        assert!(!format!("{gl:?}").contains("token: t"));
    }
}
