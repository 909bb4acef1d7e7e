//! Small helpers shared by the test bed components: free ports, waiting for a port, an HTTP
//! client that never goes through a proxy, and the locations of helper binaries.

use std::{
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use crate::error::BedError;

/// A port on 127.0.0.1 that was free a moment ago (bind, read, release). Another process may
/// take it before it is used; callers that spawn servers on it retry on failure.
pub fn free_port() -> Result<u16, BedError> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(BedError::io("bind a free port"))?;
    let port = listener.local_addr().map_err(BedError::io("read a free port"))?.port();
    Ok(port)
}

/// Waits until something accepts TCP connections on `addr`, polling every 20 ms.
pub async fn wait_for_tcp(addr: SocketAddr, timeout: Duration) -> Result<(), BedError> {
    let deadline = Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(addr).await.is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(BedError::Timeout(timeout, format!("nothing listens on {addr}")));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Calls `probe` every `every` until it returns `Some`, an error, or `timeout` passes; the
/// timeout error says `what()` (evaluated then, so it can describe the last state).
pub async fn poll_until<T, Fut>(
    timeout: Duration,
    every: Duration,
    what: impl FnOnce() -> String,
    mut probe: impl FnMut() -> Fut,
) -> Result<T, BedError>
where
    Fut: Future<Output = Result<Option<T>, BedError>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(found) = probe().await? {
            return Ok(found);
        }
        if Instant::now() >= deadline {
            return Err(BedError::Timeout(timeout, what()));
        }
        tokio::time::sleep(every).await;
    }
}

/// An HTTP client for 127.0.0.1 components: no proxy from the environment, bounded timeouts.
pub fn http_client() -> Result<reqwest::Client, BedError> {
    Ok(reqwest::Client::builder()
        .no_proxy()
        .connect_timeout(Duration::from_secs(2))
        .timeout(Duration::from_secs(30))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?)
}

/// Where the `serin-demo-app` binary is (see [`find_binary`]).
pub fn find_demo_app() -> Option<PathBuf> {
    find_binary("SERIN_DEMO_APP", "serin-demo-app")
}

/// Where a binary of this workspace is: the path in `$env_var`, else `name` next to the
/// running executable or one directory up (test binaries live in `target/<profile>/deps`).
pub fn find_binary(env_var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env_var) {
        return Some(PathBuf::from(path));
    }
    let exe = std::env::current_exe().ok()?;
    let dir = exe.parent()?;
    [dir, dir.parent().unwrap_or(dir)].iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Finds `name` in `$PATH` or returns [`BedError::Missing`] with `hint`.
pub fn find_program(name: &str, hint: &str) -> Result<PathBuf, BedError> {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|d| d.join(name)).find(|p| p.is_file()));
    found.ok_or_else(|| BedError::Missing { program: name.to_string(), hint: hint.to_string() })
}

/// Writes `contents` to `path` atomically (temporary file in the same directory, then rename),
/// so file watchers never see a half-written file.
pub fn write_atomically(path: &Path, contents: &[u8]) -> Result<(), BedError> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, contents).map_err(BedError::io(format!("write {}", tmp.display())))?;
    std::fs::rename(&tmp, path).map_err(BedError::io(format!("rename to {}", path.display())))
}
