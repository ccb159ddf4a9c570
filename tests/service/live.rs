//! Live updates: server-sent events carry queued → done, and the JSON endpoint agrees.

use std::time::Instant;

use futures::StreamExt;
use serde_json::Value;

use crate::common::*;

/// Reads `status` events from an SSE response until `until` says stop; returns them all.
async fn read_events(response: reqwest::Response, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("the stream stays alive");
        let Some(chunk) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
        while let Some(end) = buffer.find("\n\n") {
            let block: String = buffer.drain(..end + 2).collect();
            let mut name = "message";
            let mut data = String::new();
            for line in block.lines() {
                if let Some(v) = line.strip_prefix("event:") {
                    name = if v.trim() == "status" {
                        "status"
                    } else {
                        "other"
                    };
                } else if let Some(v) = line.strip_prefix("data:") {
                    data.push_str(v.trim_start());
                }
            }
            if name == "status" {
                let value: Value = serde_json::from_str(&data).unwrap();
                let stop = until(&value);
                events.push(value);
                if stop {
                    return events;
                }
            }
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_stream_reports_queued_then_done_and_the_json_endpoint_agrees() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();

    // No worker yet: the case must be seen waiting first.
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[1])).await;
    let response = client
        .get(app.url(&format!("/cases/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let first = read_events(response, |_| true).await;
    assert_eq!(first[0]["status"], "queued");

    // Listen again, start a worker, and follow the stream to the end.
    let response = client
        .get(app.url(&format!("/cases/{id}/events")))
        .send()
        .await
        .unwrap();
    let worker = InProcessWorker::spawn(env.worker_args());
    let events = read_events(response, |v| {
        v["status"] == "done" || v["status"] == "failed"
    })
    .await;
    let statuses: Vec<&str> = events
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.first(), Some(&"queued"), "{statuses:?}");
    assert_eq!(statuses.last(), Some(&"done"), "{statuses:?}");

    // The stream's final event and the JSON endpoint describe the same result.
    let done = events.last().unwrap();
    let json = case_json(&client, &app, id).await;
    assert_eq!(json["status"], "done");
    assert_eq!(json["result"], done["result"]);
    assert_eq!(json["result"]["diagnoses"].as_array().unwrap().len(), 7);

    // A stream opened after the end sends the final state once and closes.
    let response = client
        .get(app.url(&format!("/cases/{id}/events")))
        .send()
        .await
        .unwrap();
    let after = read_events(response, |_| false).await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0]["status"], "done");

    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_stream_of_an_unknown_case_is_a_404() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let response = client
        .get(app.url(&format!("/cases/{}/events", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    let response = client
        .get(app.url("/cases/not-a-uuid/events"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
    app.stop().await;
}
