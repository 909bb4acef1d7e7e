//! Leases and Events as ordinary objects, deletecollection, and all-namespaces watches.

use std::time::Duration;

use crate::common::{bounded, code, start};
use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::{
    coordination::v1::Lease,
    core::v1::{ConfigMap, Namespace, Secret},
    events::v1::Event as K8sEvent,
};
use kube::{
    Api, Resource, ResourceExt,
    api::{DeleteParams, ListParams, PostParams},
    runtime::{
        WatchStreamExt,
        events::{Event, EventType, Recorder, Reporter},
        watcher,
    },
};
use serde_json::json;

#[tokio::test]
async fn leases_support_leader_election_style_updates() {
    let (server, client) = start().await;
    bounded(async {
        let leases: Api<Lease> = Api::namespaced(client.clone(), "kube-system");
        let lease: Lease = serde_json::from_value(json!({"metadata": {"name": "serin-leader"},
            "spec": {"holderIdentity": "a", "leaseDurationSeconds": 15, "renewTime": "2026-01-01T00:00:00.000000Z"}}))
        .expect("lease");
        let held = leases.create(&PostParams::default(), &lease).await.expect("acquire");
        let mut b = held.clone();
        b.spec.as_mut().expect("spec").holder_identity = Some("b".into());
        let taken = leases.replace("serin-leader", &PostParams::default(), &b).await.expect("b takes over");
        let mut a = held.clone();
        a.spec.as_mut().expect("spec").renew_time = None;
        let err = leases.replace("serin-leader", &PostParams::default(), &a).await.expect_err("stale renew");
        assert_eq!(code(&err), Some(409));
        assert_eq!(leases.get("serin-leader").await.expect("get").spec.and_then(|s| s.holder_identity), Some("b".into()));
        assert_ne!(taken.resource_version(), held.resource_version());
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn secret_string_data_is_folded_into_data() {
    let (server, client) = start().await;
    bounded(async {
        let secrets: Api<Secret> = Api::default_namespaced(client);
        let s: Secret =
            serde_json::from_value(json!({"metadata": {"name": "s"}, "stringData": {"url": "http://x"}}))
                .expect("secret");
        let created = secrets.create(&PostParams::default(), &s).await.expect("create");
        assert!(created.string_data.is_none());
        let data = created.data.expect("data");
        assert_eq!(data.get("url").map(|b| b.0.as_slice()), Some(b"http://x".as_slice()));
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn recorder_publishes_events() {
    let (server, client) = start().await;
    bounded(async {
        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "subject"}})).expect("cm");
        let cm = cms.create(&PostParams::default(), &cm).await.expect("subject");
        let recorder = Recorder::new(client.clone(), Reporter { controller: "serin".into(), instance: None });
        let ev = Event {
            type_: EventType::Normal,
            reason: "Promoted".into(),
            note: Some("canary promoted".into()),
            action: "Promote".into(),
            secondary: None,
        };
        recorder.publish(&ev, &cm.object_ref(&())).await.expect("first publish creates");
        recorder.publish(&ev, &cm.object_ref(&())).await.expect("second publish patches the series");
        let events: Api<K8sEvent> = Api::default_namespaced(client.clone());
        let list = events.list(&ListParams::default()).await.expect("list events");
        assert_eq!(list.items.len(), 1);
        let e = &list.items[0];
        assert_eq!(e.reason.as_deref(), Some("Promoted"));
        assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));

        // An Event kube-apiserver would refuse is refused, naming the fields.
        let mut bad = e.clone();
        bad.metadata = kube::api::ObjectMeta { name: Some("bad".into()), ..Default::default() };
        bad.action = None;
        bad.type_ = Some("Info".into());
        bad.series = None;
        let err = events.create(&PostParams::default(), &bad).await.expect_err("invalid event");
        let kube::Error::Api(status) = err else { panic!("an API error, got {err}") };
        assert_eq!(status.code, 422);
        assert!(
            status.message.ends_with(
                "is invalid: [action: Required value, type: Invalid value: \"\": has invalid value: Info]"
            ),
            "{}",
            status.message
        );
    })
    .await;
    server.shutdown().await;
}

#[tokio::test]
async fn delete_collection_and_all_namespaces_watch() {
    let (server, client) = start().await;
    bounded(async {
        let nss: Api<Namespace> = Api::all(client.clone());
        let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "other"}})).expect("ns");
        nss.create(&PostParams::default(), &ns).await.expect("namespace");
        let all: Api<ConfigMap> = Api::all(client.clone());
        let mut stream = watcher(all, watcher::Config::default()).applied_objects().boxed();
        for ns in ["default", "other"] {
            let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
            let cm: ConfigMap =
                serde_json::from_value(json!({"metadata": {"name": "c", "labels": {"batch": "1"}}}))
                    .expect("cm");
            cms.create(&PostParams::default(), &cm).await.expect("create");
        }
        let mut seen = Vec::new();
        while seen.len() < 2 {
            let o = stream.try_next().await.expect("watch ok").expect("object");
            seen.push(format!("{}/{}", o.namespace().unwrap_or_default(), o.name_any()));
        }
        seen.sort();
        assert_eq!(seen, vec!["default/c", "other/c"]);

        let cms: Api<ConfigMap> = Api::default_namespaced(client.clone());
        let deleted = cms
            .delete_collection(&DeleteParams::default(), &ListParams::default().labels("batch=1"))
            .await
            .expect("deletecollection");
        assert_eq!(deleted.left().map(|l| l.items.len()), Some(1));
        assert!(cms.list(&ListParams::default()).await.expect("list").items.is_empty());
        let other: Api<ConfigMap> = Api::namespaced(client.clone(), "other");
        assert_eq!(other.list(&ListParams::default()).await.expect("list").items.len(), 1);
        tokio::time::sleep(Duration::from_millis(1)).await;
    })
    .await;
    server.shutdown().await;
}
