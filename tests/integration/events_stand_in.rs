//! `controller::events::EventRecorder` against the Kubernetes API stand-in: a repeat of the
//! same Event becomes a series on the first Event, a different note is a new Event, and a
//! series whose Event is gone from the API starts a new one.

use k8s_openapi::api::core::v1::ObjectReference;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams};
use kube::runtime::events::EventType;
use serin::controller::events::{EventRecorder, Reporter};

use crate::routers_stand_in::start;

fn canary() -> ObjectReference {
    ObjectReference {
        api_version: Some("serin.dev/v1alpha1".into()),
        kind: Some("Canary".into()),
        namespace: Some("test".into()),
        name: Some("podinfo".into()),
        uid: Some("uid-1".into()),
        ..ObjectReference::default()
    }
}

async fn events(api: &Api<Event>) -> Vec<Event> {
    let mut list = api.list(&ListParams::default()).await.expect("list events").items;
    list.sort_by_key(|e| e.metadata.name.clone());
    list
}

fn summary(e: &Event) -> (String, String, i32) {
    (
        e.reason.clone().unwrap_or_default(),
        e.note.clone().unwrap_or_default(),
        e.series.as_ref().map_or(1, |s| s.count),
    )
}

#[tokio::test]
async fn repeats_become_a_series_and_new_notes_new_events() {
    let (_server, client) = start().await;
    let api: Api<Event> = Api::namespaced(client.clone(), "test");
    let recorder = EventRecorder::new(
        client,
        Reporter { controller: "serin".into(), instance: Some("replica-1".into()) },
    );
    let c = canary();
    recorder.publish(&c, EventType::Normal, "Progressing", "weight 10").await.expect("first");
    recorder.publish(&c, EventType::Normal, "Progressing", "weight 10").await.expect("repeat");
    recorder.publish(&c, EventType::Normal, "Progressing", "weight 10").await.expect("repeat");
    recorder.publish(&c, EventType::Normal, "Progressing", "weight 20").await.expect("new note");
    recorder.publish(&c, EventType::Warning, "Progressing", "weight 20").await.expect("new type");

    let mut found: Vec<_> = events(&api).await.iter().map(summary).collect();
    found.sort();
    assert_eq!(
        found,
        vec![
            ("Progressing".to_string(), "weight 10".to_string(), 3),
            ("Progressing".to_string(), "weight 20".to_string(), 1),
            ("Progressing".to_string(), "weight 20".to_string(), 1),
        ]
    );
    let first =
        events(&api).await.into_iter().find(|e| e.note.as_deref() == Some("weight 10")).expect("event");
    assert_eq!(first.regarding.as_ref().and_then(|r| r.uid.as_deref()), Some("uid-1"));
    assert_eq!(first.reporting_controller.as_deref(), Some("serin"));
    assert_eq!(first.reporting_instance.as_deref(), Some("replica-1"));
    assert_eq!(first.type_.as_deref(), Some("Normal"));
    assert!(
        first
            .series
            .as_ref()
            .is_some_and(|s| s.last_observed_time.0 >= first.event_time.as_ref().expect("time").0)
    );

    // The API dropped the Event (its TTL ran out): the next repeat creates a new one.
    let name = first.metadata.name.clone().expect("name");
    api.delete(&name, &DeleteParams::default()).await.expect("delete");
    recorder.publish(&c, EventType::Normal, "Progressing", "weight 10").await.expect("after expiry");
    let again: Vec<_> =
        events(&api).await.into_iter().filter(|e| e.note.as_deref() == Some("weight 10")).collect();
    assert_eq!(again.len(), 1);
    assert_ne!(again[0].metadata.name.as_deref(), Some(name.as_str()));
    assert_eq!(summary(&again[0]).2, 1, "a new Event, not a series");
}
