//! Watches: from a resourceVersion, initial state, bookmarks, selector transitions, 410 Gone,
//! and kube-runtime's watcher and reflector converging across a forced relist.

use std::time::Duration;

use crate::common::{bounded, start, start_with};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{coordination::v1::Lease, core::v1::ConfigMap};
use kube::{
    Api, ResourceExt,
    api::{DeleteParams, Patch, PatchParams, PostParams, WatchEvent, WatchParams},
    runtime::{WatchStreamExt, reflector, watcher},
};
use serde_json::json;
use serin_e2e::ServerConfig;

fn cm(name: &str, app: &str) -> ConfigMap {
    serde_json::from_value(json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": app}}, "data": {"k": "v"}}))
    .expect("valid configmap")
}

fn describe(e: &WatchEvent<ConfigMap>) -> String {
    match e {
        WatchEvent::Added(o) => format!("ADDED {}", o.name_any()),
        WatchEvent::Modified(o) => format!("MODIFIED {}", o.name_any()),
        WatchEvent::Deleted(o) => format!("DELETED {}", o.name_any()),
        WatchEvent::Bookmark(b) => format!("BOOKMARK {}", b.metadata.resource_version),
        WatchEvent::Error(s) => format!("ERROR {}", s.code),
    }
}

#[tokio::test]
async fn watch_from_resource_version_replays_later_changes() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let pp = PostParams::default();
        cms.create(&pp, &cm("before", "a")).await.expect("create");
        let list = cms.list(&Default::default()).await.expect("list");
        let rv = list.metadata.resource_version.clone().expect("list rv");
        cms.create(&pp, &cm("after", "a")).await.expect("create");
        cms.patch("after", &PatchParams::default(), &Patch::Merge(json!({"data": {"k": "2"}})))
            .await
            .expect("patch");
        cms.delete("after", &DeleteParams::default()).await.expect("delete");

        let stream = cms
            .watch(&WatchParams { bookmarks: false, ..WatchParams::default() }.timeout(1), &rv)
            .await
            .expect("watch");
        let events: Vec<String> = stream.map_ok(|e| describe(&e)).try_collect().await.expect("events");
        assert_eq!(events, vec!["ADDED after", "MODIFIED after", "DELETED after"]);

        // resourceVersion "0": synthetic ADDED for the current state.
        let stream = cms
            .watch(&WatchParams { bookmarks: false, ..WatchParams::default() }.timeout(1), "0")
            .await
            .expect("watch from 0");
        let events: Vec<String> = stream.map_ok(|e| describe(&e)).try_collect().await.expect("events");
        assert_eq!(events, vec!["ADDED before"]);
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn watch_applies_selectors_with_transitions() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let rv = cms.list(&Default::default()).await.expect("list").metadata.resource_version.expect("rv");
        let pp = PostParams::default();
        cms.create(&pp, &cm("x", "web")).await.expect("x");
        cms.create(&pp, &cm("y", "db")).await.expect("y");
        cms.patch(
            "y",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "web"}}})),
        )
        .await
        .expect("y joins");
        cms.patch(
            "x",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"app": "db"}}})),
        )
        .await
        .expect("x leaves");
        let wp = WatchParams { bookmarks: false, ..WatchParams::default() }.labels("app=web").timeout(1);
        let events: Vec<String> = cms
            .watch(&wp, &rv)
            .await
            .expect("watch")
            .map_ok(|e| describe(&e))
            .try_collect()
            .await
            .expect("events");
        assert_eq!(events, vec!["ADDED x", "ADDED y", "DELETED x"]);
        let wp =
            WatchParams { bookmarks: false, ..WatchParams::default() }.fields("metadata.name=y").timeout(1);
        let events: Vec<String> = cms
            .watch(&wp, &rv)
            .await
            .expect("watch")
            .map_ok(|e| describe(&e))
            .try_collect()
            .await
            .expect("events");
        assert_eq!(events, vec!["ADDED y", "MODIFIED y"]);

        // The legacy single-object form (`.../configmaps/y?watch=1`) is a name-selected watch.
        let url =
            format!("/api/v1/namespaces/default/configmaps/y?watch=1&resourceVersion={rv}&timeoutSeconds=1");
        let req = axum::http::Request::get(url).body(Vec::new()).expect("request");
        let text = client.request_text(req).await.expect("single-object watch");
        let types: Vec<String> = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .map(|v| {
                format!("{} {}", v["type"].as_str().unwrap_or_default(), v["object"]["metadata"]["name"])
            })
            .collect();
        assert_eq!(types, vec!["ADDED \"y\"", "MODIFIED \"y\""]);
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn bookmarks_carry_the_latest_resource_version() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let leases: Api<Lease> = Api::default_namespaced(client.clone());
        let rv = cms.list(&Default::default()).await.expect("list").metadata.resource_version.expect("rv");
        // A change to another resource still advances the bookmark's resourceVersion.
        let lease: Lease =
            serde_json::from_value(json!({"metadata": {"name": "l"}, "spec": {"holderIdentity": "a"}}))
                .expect("lease");
        let created = leases.create(&PostParams::default(), &lease).await.expect("lease");
        let wp = WatchParams { bookmarks: true, ..WatchParams::default() }.timeout(2);
        let mut stream = cms.watch(&wp, &rv).await.expect("watch").boxed();
        let first = stream.try_next().await.expect("event").expect("some event");
        match first {
            WatchEvent::Bookmark(b) => {
                assert_eq!(Some(b.metadata.resource_version), created.metadata.resource_version)
            }
            other => panic!("expected a bookmark, got {}", describe(&other)),
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn too_old_resource_version_is_gone() {
    let config = ServerConfig { history_limit: 3, ..ServerConfig::default() };
    let (server, client) = start_with(config).await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let rv = cms.list(&Default::default()).await.expect("list").metadata.resource_version.expect("rv");
        for i in 0..5 {
            cms.create(&PostParams::default(), &cm(&format!("c{i}"), "a")).await.expect("create");
        }
        let events: Vec<WatchEvent<ConfigMap>> = cms
            .watch(&WatchParams { bookmarks: false, ..WatchParams::default() }.timeout(1), &rv)
            .await
            .expect("watch")
            .try_collect()
            .await
            .expect("ok");
        match events.as_slice() {
            [WatchEvent::Error(s)] => {
                assert_eq!(s.code, 410);
                assert_eq!(s.reason, "Expired");
            }
            other => panic!(
                "expected one 410 ERROR event, got {:?}",
                other.iter().map(describe).collect::<Vec<_>>()
            ),
        }
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn watcher_relists_after_gone_and_reflector_converges() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let pp = PostParams::default();
        cms.create(&pp, &cm("keep", "a")).await.expect("keep");
        cms.create(&pp, &cm("drop", "a")).await.expect("drop");

        let (reader, writer) = reflector::store::<ConfigMap>();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default()));
        let task = tokio::spawn(async move {
            let mut stream = stream.boxed();
            while let Some(ev) = stream.next().await {
                let label = match &ev {
                    Ok(watcher::Event::Init) => "init".to_string(),
                    Ok(watcher::Event::InitDone) => "init-done".to_string(),
                    Ok(watcher::Event::Apply(o)) => format!("apply {}", o.name_any()),
                    Ok(watcher::Event::Delete(o)) => format!("delete {}", o.name_any()),
                    Ok(watcher::Event::InitApply(o)) => format!("init-apply {}", o.name_any()),
                    Err(e) => format!("error {e}"),
                };
                if tx.send(label).is_err() {
                    break;
                }
            }
        });
        reader.wait_until_ready().await.expect("store ready");
        assert_eq!(reader.len(), 2);

        // Once its watch is open, expire every watch and change state while the watcher relists.
        while server.open_watches() == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        server.expire_watches();
        cms.delete("drop", &DeleteParams::default()).await.expect("delete");
        cms.create(&pp, &cm("new", "a")).await.expect("new");

        let mut saw_error = false;
        let mut inits = 0;
        while let Some(label) = rx.recv().await {
            saw_error |= label.starts_with("error");
            if label == "init-done" {
                inits += 1;
            }
            let mut names: Vec<String> = reader.state().iter().map(|o| o.name_any()).collect();
            names.sort();
            if inits >= 2 && names == ["keep", "new"] {
                break;
            }
        }
        assert!(saw_error, "watcher reported the 410");
        task.abort();
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn streaming_list_sends_initial_events_end_bookmark() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        cms.create(&PostParams::default(), &cm("one", "a")).await.expect("create");
        let stream = watcher(cms.clone(), watcher::Config::default().streaming_lists()).default_backoff();
        let objs: Vec<ConfigMap> =
            stream.applied_objects().take(1).try_collect().await.expect("initial object");
        assert_eq!(objs.first().map(|o| o.name_any()).as_deref(), Some("one"));
        tokio::time::sleep(Duration::from_millis(10)).await;
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn reflector_matches_the_server_under_concurrent_writes() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let (reader, writer) = reflector::store::<ConfigMap>();
        let stream = reflector(writer, watcher(cms.clone(), watcher::Config::default())).default_backoff();
        let task = tokio::spawn(stream.for_each(|_| async {}));
        reader.wait_until_ready().await.expect("store ready");

        let mut writers = Vec::new();
        for w in 0..4 {
            let cms = cms.clone();
            writers.push(tokio::spawn(async move {
                for i in 0..40 {
                    let name = format!("w{w}-{}", i % 10);
                    match i % 4 {
                        0 | 1 => {
                            let _ = cms.create(&PostParams::default(), &cm(&name, "a")).await;
                        }
                        2 => {
                            let patch = Patch::Merge(json!({"data": {"i": i.to_string()}}));
                            let _ = cms.patch(&name, &PatchParams::default(), &patch).await;
                        }
                        _ => {
                            let _ = cms.delete(&name, &DeleteParams::default()).await;
                        }
                    }
                }
            }));
        }
        // Expire the watch mid-stream: the watcher relists while writes continue.
        tokio::time::sleep(Duration::from_millis(5)).await;
        server.expire_watches();
        for w in writers {
            w.await.expect("writer");
        }
        let want = cms.list(&Default::default()).await.expect("list");
        let want_rv = want.metadata.resource_version.clone().unwrap_or_default();
        let mut want: Vec<(String, Option<String>)> =
            want.items.iter().map(|o| (o.name_any(), o.resource_version())).collect();
        want.sort();
        loop {
            let mut got: Vec<(String, Option<String>)> =
                reader.state().iter().map(|o| (o.name_any(), o.resource_version())).collect();
            got.sort();
            if got == want {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!want_rv.is_empty());
        task.abort();
    })
    .await;
    server.shutdown().await;
}
