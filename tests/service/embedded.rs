//! The embedded mode has the scaled mode's features: the same web server and worker, in one
//! process, on one SQLite file and a queue inside the process (what `mole` runs with neither
//! `DATABASE_URL` nor `REDIS_URL`). One tour of the person's and the clinic's pages and the
//! operations endpoints, in-process; `tests/embedded.rs` runs the binary itself.

use std::time::Duration;

use mole_runtime::{Backends, ConnectionArgs};
use mole_storage::{EventKind, Role};
use serde_json::Value;

use crate::admin::{account_in, sign_in};
use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_person_the_clinic_and_operations_have_every_feature_in_the_embedded_mode() {
    let dir = std::env::temp_dir().join(format!("mole-embedded-{}", uuid::Uuid::new_v4()));
    let connection = ConnectionArgs::embedded(dir.join("data"));
    let backends = Backends::connect_as_server(&connection).await.unwrap();
    assert!(backends.is_embedded());
    assert!(backends.queue.is_local());
    let store = backends.store.clone();
    // A second server on the same directory is refused while this one holds it.
    let second = Backends::connect_as_server(&connection).await.unwrap_err();
    assert!(
        second.to_string().contains("another mole process"),
        "{second}"
    );

    let app = App::spawn_on(serve_args_on(connection.clone()), backends.clone()).await;
    let worker = InProcessWorker::spawn_on(worker_args_on(connection), backends.clone());
    let client = http();

    // The person: upload from the browser form, follow the live stream to the verdict.
    let cookie = browser_cookie(&app).await;
    let photo = std::fs::read(&fixture_images()[0]).unwrap();
    let response = upload(&client, &app, "mole.jpg", photo, Some(&cookie), false).await;
    let id = redirected_case(&response);
    let stream = client
        .get(app.url(&format!("/cases/{id}/events")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );
    let done = wait_final(&client, &app, id).await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(done["result"]["verdict"].is_string());
    for path in [
        format!("/cases/{id}"),
        format!("/cases/{id}/history"),
        format!("/cases/{id}/image"),
        "/my-cases".to_owned(),
    ] {
        let page = client
            .get(app.url(&path))
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert_eq!(page.status(), 200, "{path}");
    }
    let mine = client
        .get(app.url("/my-cases"))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(mine.contains(&id.to_string()), "my cases lists the case");

    // The model, health and metrics.
    assert_eq!(
        client.get(app.url("/model")).send().await.unwrap().status(),
        200
    );
    let mut health = Value::Null;
    for _ in 0..100 {
        health = client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["status"] == "ok" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(health["status"], "ok", "{health}");
    let metrics = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mole_cases{status=\"done\"} 1"),
        "{metrics}"
    );

    // The clinic: sign in, the past cases, a review, the export.
    let password = account_in(&store, "rita", Role::Admin).await;
    let rita = sign_in(&app, "rita", &password).await;
    let list = rita.json(&app, "/admin/cases").await;
    assert_eq!(list["total"], 1, "{list}");
    let reviewed = rita
        .review(&app, id, "nv", "looks_benign", "a naevus")
        .await;
    assert_eq!(reviewed.status(), 303);
    assert_eq!(store.reviews(id).await.unwrap().len(), 1);
    let csv = rita.get(&app, "/admin/cases.csv").await;
    assert_eq!(csv.status(), 200);
    assert!(csv.text().await.unwrap().contains(&id.to_string()));
    assert_eq!(rita.get(&app, "/admin/agreement").await.status(), 200);

    // Deletion by the uploader: the photo goes, the trail stays.
    let deleted = client
        .delete(app.url(&format!("/api/cases/{id}")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert!(store.image(id).await.unwrap().is_none());
    let kinds: Vec<EventKind> = store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for kind in [
        EventKind::Created,
        EventKind::Queued,
        EventKind::Started,
        EventKind::Completed,
        EventKind::Reviewed,
        EventKind::Deleted,
    ] {
        assert!(kinds.contains(&kind), "{kind:?} in {kinds:?}");
    }

    app.stop().await;
    worker.stop().await.unwrap();
    store.close().await;
    drop(backends);
    let _ = std::fs::remove_dir_all(&dir);
}
