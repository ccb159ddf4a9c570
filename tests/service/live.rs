//! Live updates: server-sent events carry queued → done with what the page shows, one watch per
//! case serves every stream of it, the number of streams is capped, and `Last-Event-ID` resumes.

use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::Value;

use crate::common::*;

/// Reads `status` events from an SSE response until `until` says stop; returns them all.
async fn read_events(response: reqwest::Response, until: impl Fn(&Value) -> bool) -> Vec<Value> {
    read_events_from(&mut Box::pin(response.bytes_stream()), until).await
}

type ByteStream = std::pin::Pin<Box<dyn futures::Stream<Item = reqwest::Result<Vec<u8>>> + Send>>;

/// Like [`read_events`], on a stream that stays open for more reads afterwards.
async fn read_events_from<B: AsRef<[u8]>>(
    stream: &mut (impl futures::Stream<Item = reqwest::Result<B>> + Unpin),
    until: impl Fn(&Value) -> bool,
) -> Vec<Value> {
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        let chunk = tokio::time::timeout(PATIENCE, stream.next())
            .await
            .expect("the stream stays alive");
        let Some(chunk) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(chunk.unwrap().as_ref()));
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

    // The stream's final event and the JSON endpoint describe the same result, and the event
    // carries the page's panel, so the page needs no further request to show it.
    let done = events.last().unwrap();
    let json = case_json(&client, &app, id).await;
    assert_eq!(json["status"], "done");
    assert_eq!(json["result"], done["result"]);
    assert_eq!(json["result"]["diagnoses"].as_array().unwrap().len(), 7);
    let html = done["html"].as_str().unwrap();
    assert!(html.contains("id=\"verdict\""), "{html}");
    assert!(html.contains("data-status=\"done\""), "{html}");
    assert!(done["version"].as_i64().unwrap() > events[0]["version"].as_i64().unwrap());

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

/// Opens the event stream of a case and waits for its first event; returns the open stream.
async fn follow(
    client: &reqwest::Client,
    app: &App,
    id: uuid::Uuid,
    last_event_id: Option<i64>,
) -> (ByteStream, Vec<Value>) {
    let mut request = client.get(app.url(&format!("/cases/{id}/events")));
    if let Some(last) = last_event_id {
        request = request.header("last-event-id", last.to_string());
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    let mut stream: ByteStream = Box::pin(response.bytes_stream().map(|r| r.map(|b| b.to_vec())));
    let first = if last_event_id.is_none() {
        read_events_from(&mut stream, |_| true).await
    } else {
        Vec::new()
    };
    (stream, first)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_first_stream_starts_from_the_state_its_access_check_read_and_still_sees_every_change() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    // Once the listener listens (a moment after start), opening the first stream of a case costs
    // no read beyond the access check's: the watch starts from that state.
    let mut seeded = None;
    for image in fixture_images().iter().take(20) {
        let id = upload_case(&client, &app, "lesion.jpg", read(image)).await;
        let before = app.live.reads();
        let (stream, first) = follow(&client, &app, id, None).await;
        assert_eq!(first[0]["status"], "queued");
        if app.live.reads() == before {
            seeded = Some(stream);
            break;
        }
        drop(stream);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut stream = seeded.expect("no stream started from its access check's state");
    // The changes after it still arrive, each read once.
    let _worker = InProcessWorker::spawn(env.worker_args());
    let events = read_events_from(&mut stream, |v| v["status"] == "done").await;
    assert_eq!(events.last().unwrap()["status"], "done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forty_streams_of_one_case_share_one_watch_and_a_database_read_per_change() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[5])).await;

    let mut streams = Vec::new();
    for _ in 0..40 {
        let (stream, first) = follow(&client, &app, id, None).await;
        assert_eq!(first[0]["status"], "queued");
        streams.push(stream);
    }
    assert_eq!(app.live.watched_cases(), 1, "one watch for the case");
    assert_eq!(app.live.open_streams(), 40);
    let reads_before = app.live.reads();

    let worker = InProcessWorker::spawn(env.worker_args());
    for stream in &mut streams {
        let events = read_events_from(stream, |v| v["status"] == "done").await;
        assert_eq!(events.last().unwrap()["status"], "done");
    }
    // started, completed: at most one read each (pokes that meet a read coalesce), plus a
    // resync tick or two on a slow machine; never one per stream.
    let reads = app.live.reads() - reads_before;
    assert!(
        (1..=4).contains(&reads),
        "{reads} reads for 40 streams and two changes"
    );
    drop(streams);
    eventually("the finished case's watch ends", async || {
        app.live.watched_cases() == 0 && app.live.open_streams() == 0
    })
    .await;
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn streams_beyond_the_cap_get_429_and_uploads_still_complete() {
    let env = TestEnv::new().await;
    let mut args = env.serve_args();
    args.max_streams = 5;
    let app = App::spawn_with(args).await;
    let client = http();
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[6])).await;
    let mut open = Vec::new();
    for _ in 0..5 {
        open.push(follow(&client, &app, id, None).await.0);
    }
    let refused = client
        .get(app.url(&format!("/cases/{id}/events")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 429);
    assert!(refused.headers().contains_key("retry-after"));

    // The page's fallback still works, and so do uploads and their analysis.
    let panel = client
        .get(app.url(&format!("/cases/{id}/panel")))
        .send()
        .await
        .unwrap();
    assert_eq!(panel.status(), 200);
    let worker = InProcessWorker::spawn(env.worker_args());
    let other = upload_case(&client, &app, "other.jpg", read(&fixture_images()[7])).await;
    assert_eq!(wait_final(&client, &app, other).await["status"], "done");

    // A closed stream frees its place.
    drop(open.pop());
    eventually("a place is free again", async || {
        app.live.open_streams() < 5
    })
    .await;
    let (_, first) = follow(&client, &app, id, None).await;
    assert_eq!(first[0]["status"], "done");
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reconnecting_stream_with_last_event_id_gets_only_what_is_new() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[8])).await;
    let (stream, first) = follow(&client, &app, id, None).await;
    let seen = first[0]["version"].as_i64().unwrap();
    drop(stream);

    // The browser reconnects naming the last event it had: the state it has is not sent again.
    let (mut stream, _) = follow(&client, &app, id, Some(seen)).await;
    let nothing = tokio::time::timeout(
        Duration::from_millis(500),
        read_events_from(&mut stream, |_| true),
    )
    .await;
    assert!(
        nothing.is_err(),
        "the known state was sent again: {nothing:?}"
    );
    let worker = InProcessWorker::spawn(env.worker_args());
    let events = read_events_from(&mut stream, |v| v["status"] == "done").await;
    assert!(events.iter().all(|e| e["status"] != "queued"), "{events:?}");
    assert_eq!(events.last().unwrap()["status"], "done");

    // A client that already has the final state gets an empty stream that ends.
    let done = events.last().unwrap()["version"].as_i64().unwrap();
    let response = client
        .get(app.url(&format!("/cases/{id}/events")))
        .header("last-event-id", done.to_string())
        .send()
        .await
        .unwrap();
    assert!(read_events(response, |_| false).await.is_empty());
    worker.stop().await.unwrap();
    app.stop().await;
}
