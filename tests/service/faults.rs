//! Faults with real processes: a worker SIGKILLed mid-batch, Redis flushed and restarted,
//! PostgreSQL restarted. Each ends with every acknowledged case analysed exactly once.
//!
//! Tests that stop a server start their own ([`PrivatePostgres`], [`PrivateRedis`]): the shared
//! servers of the other tests running beside them are never touched.

use std::time::Duration;

use mole_storage::{EventKind, NewCase, Store, StoredImage};
use uuid::Uuid;

use crate::common::*;

/// Every case done, each with exactly one `completed` event.
async fn assert_all_done_once(store: &Store, ids: &[Uuid]) {
    wait_all_final(store, ids).await;
    for id in ids {
        let case = store.case(*id).await.unwrap().unwrap();
        assert_eq!(case.status.as_str(), "done", "case {id}: {:?}", case.error);
        let events = store.events(*id).await.unwrap();
        let completed = events
            .iter()
            .filter(|e| e.kind == EventKind::Completed)
            .count();
        assert_eq!(completed, 1, "case {id} completed once: {events:?}");
    }
}

async fn counts(store: &Store) -> (i64, i64) {
    sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'done'), \
         count(*) FILTER (WHERE status = 'processing') FROM cases",
    )
    .fetch_one(store.pg_pool().expect("PostgreSQL"))
    .await
    .unwrap()
}

/// Text a public answer must never hold while a server is away: addresses, ports, driver and
/// connection errors. (`/metrics` names its gauges after the connection pool and counts `refused`
/// cases, so there only the error texts themselves are looked for.)
fn assert_no_internals(body: &str, port: u16, what: &str) {
    let lower = body.to_lowercase();
    let mut needles = vec![
        "127.0.0.1".to_owned(),
        format!(":{port}"),
        "connection refused".to_owned(),
        "sqlx".to_owned(),
        "redis error".to_owned(),
        "database error".to_owned(),
        "timed out".to_owned(),
        "io error".to_owned(),
        "os error".to_owned(),
    ];
    if what != "/metrics" {
        needles.extend(["connection".to_owned(), "pool".to_owned()]);
    }
    for needle in &needles {
        assert!(!lower.contains(needle), "{what} shows {needle:?}: {body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_killed_mid_batch_loses_no_case_and_each_is_completed_once() {
    let env = TestEnv::new().await;
    // Phone-sized photos stored without the model's view, so that the worker decodes each one
    // (tens of milliseconds) and can be caught in the middle of its work.
    // A lesion photo scaled up (a made-up pattern would be refused as "not a lesion").
    let lesion = image::load_from_memory(&read(&fixture_images()[0]))
        .unwrap()
        .to_rgb8();
    let photo = image::imageops::resize(&lesion, 4000, 3000, image::imageops::FilterType::Triangle);
    let mut png = Vec::new();
    photo
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..24 {
        let id = Uuid::new_v4();
        env.store
            .create_case(NewCase {
                id,
                request_id: format!("kill-{i}"),
                uploader: "k".repeat(64),
                image_sha256: Uuid::new_v4().simple().to_string(),
                image: StoredImage {
                    content_type: "image/png".to_owned(),
                    width: 4000,
                    height: 3000,
                    bytes: png.clone(),
                },
                model_input: None,
            })
            .await
            .unwrap();
        env.push(id).await;
        ids.push(id);
    }
    let doomed = WorkerProcess::spawn(
        &env,
        &[
            ("MOLE_LEASE_SECS", "2"),
            ("MOLE_MAX_BATCH", "4"),
            ("MOLE_WORKER_CONCURRENCY", "4"),
        ],
    );
    // Kill it once it has finished some cases and holds others.
    let mut at_kill = (0, 0);
    eventually("the worker is mid-work", async || {
        at_kill = counts(&env.store).await;
        at_kill.0 >= 1 && at_kill.1 >= 1
    })
    .await;
    doomed.kill();
    let (done, held) = counts(&env.store).await;
    assert!(
        done < 24 && held >= 1,
        "caught mid-work: {done} done, {held} held"
    );

    // Another worker takes the dead one's cases over once their leases run out.
    let mut args = env.worker_args();
    args.requeue_after_secs = 1;
    args.sweep_interval_secs = 1;
    let rescuer = InProcessWorker::spawn(args);
    assert_all_done_once(&env.store, &ids).await;
    let mut taken_over = 0;
    for id in &ids {
        let events = env.store.events(*id).await.unwrap();
        if events.iter().any(|e| e.kind == EventKind::Requeued) {
            taken_over += 1;
        }
    }
    assert!(taken_over >= 1, "the held cases were queued again");
    rescuer.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_flushed_and_then_restarted_loses_no_acknowledged_upload() {
    let mut redis = PrivateRedis::start();
    let env = TestEnv::on(&base_database_url(), &redis.url()).await;
    let app = App::spawn(&env).await;
    let client = http();
    let images = distinct_images(10);

    // 1. Uploads acknowledged, then Redis loses everything before a worker saw them.
    let mut ids = Vec::new();
    for (name, bytes) in images[..5].iter().cloned() {
        ids.push(upload_case(&client, &app, &name, bytes).await);
    }
    let mut conn = env.jobs.connection().expect("Redis");
    redis::cmd("FLUSHALL")
        .query_async::<()>(&mut conn)
        .await
        .unwrap();
    let fast_recovery = [
        ("MOLE_REQUEUE_AFTER_SECS", "1"),
        ("MOLE_SWEEP_INTERVAL_SECS", "1"),
    ];
    let worker = WorkerProcess::spawn(&env, &fast_recovery);
    assert_all_done_once(&env.store, &ids).await;

    // 2. Redis goes away: uploads are still acknowledged (PostgreSQL holds them), health says
    //    Redis is down without saying why.
    redis.down();
    let mut later = Vec::new();
    for (name, bytes) in images[5..].iter().cloned() {
        later.push(upload_case(&client, &app, &name, bytes).await);
    }
    let health = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    let body = health.text().await.unwrap();
    assert_no_internals(&body, redis.port, "/healthz");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["redis"]["ok"], false);

    // 3. Redis comes back empty: web and worker reconnect by themselves, nothing is lost.
    redis.up();
    assert_all_done_once(&env.store, &later).await;
    assert_all_done_once(&env.store, &ids).await;
    eventually("the web process sees Redis again", async || {
        client
            .get(app.url("/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
    })
    .await;
    assert!(worker.terminate(), "the worker stops cleanly");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgresql_restarted_loses_no_acknowledged_upload_and_everything_reconnects() {
    let pg = PrivatePostgres::start();
    let env = TestEnv::on(&pg.url(), &redis_url()).await;
    let app = App::spawn(&env).await;
    let client = http();
    let worker = WorkerProcess::spawn(
        &env,
        &[
            ("MOLE_REQUEUE_AFTER_SECS", "1"),
            ("MOLE_SWEEP_INTERVAL_SECS", "1"),
            ("MOLE_LEASE_SECS", "5"),
        ],
    );
    // The worker is up (it reported a forward pass) before the database goes.
    eventually("the worker is up", async || {
        let health: serde_json::Value = client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        health["status"] == "ok"
    })
    .await;
    let images = distinct_images(10);
    let mut ids = Vec::new();
    for (name, bytes) in images[..5].iter().cloned() {
        ids.push(upload_case(&client, &app, &name, bytes).await);
    }

    // PostgreSQL stops hard. Every answer is a clear 503 with Retry-After and no internals.
    pg.down();
    let (name, bytes) = images[5].clone();
    let refused = upload(&client, &app, &name, bytes, None, true).await;
    assert_eq!(refused.status(), 503);
    assert!(refused.headers().contains_key("retry-after"));
    let body = refused.text().await.unwrap();
    assert_no_internals(&body, pg.port, "an upload");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    for path in [
        format!("/cases/{}", ids[0]),
        format!("/api/cases/{}", ids[0]),
        format!("/cases/{}/panel", ids[0]),
        format!("/cases/{}/events", ids[0]),
        "/healthz".to_owned(),
        "/metrics".to_owned(),
        "/".to_owned(),
        "/model".to_owned(),
    ] {
        let response = client.get(app.url(&path)).send().await.unwrap();
        let status = response.status().as_u16();
        assert!(
            [200, 503].contains(&status),
            "{path}: {status} while the database is away"
        );
        let body = response.text().await.unwrap();
        assert_no_internals(&body, pg.port, &path);
    }

    // It comes back: the web process, the worker and the live listener reconnect by themselves.
    pg.up();
    let mut later: Vec<Uuid> = Vec::new();
    for (name, bytes) in &images[6..] {
        let mut id: Option<Uuid> = None;
        eventually("uploads are taken again", async || {
            let response = upload(&client, &app, name, bytes.clone(), None, true).await;
            if response.status() == 201 {
                let body: serde_json::Value = response.json().await.unwrap();
                id = body["id"].as_str().and_then(|s| s.parse().ok());
            }
            id.is_some()
        })
        .await;
        later.push(id.unwrap());
    }
    ids.extend(later);
    assert_all_done_once(&env.store, &ids).await;
    let page = client
        .get(app.url(&format!("/cases/{}", ids[0])))
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    assert!(worker.terminate(), "the worker stops cleanly");
    app.stop().await;
    // The private server goes with `pg`; give the pool a moment to let go first.
    tokio::time::sleep(Duration::from_millis(100)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_whose_inference_thread_dies_stops_with_an_error_instead_of_failing_every_case() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let mut args = env.worker_args();
    args.occlusion_grid = 0;
    args.fault_panic_after_batches = Some(1);
    let dying = InProcessWorker::spawn(args);

    // Its first batch is written; then its inference thread panics (as a bug in its loop would).
    let first = upload_case(&client, &app, "a.jpg", read(&fixture_images()[0])).await;
    assert_eq!(wait_final(&client, &app, first).await["status"], "done");
    // It does not live on as a worker that can only fail its jobs: it stops, with an error.
    let error = dying
        .stopped_by_itself()
        .await
        .expect_err("a worker without its inference thread must not stop cleanly");
    assert!(error.to_string().contains("inference thread"), "{error}");

    // The next case waits for a healthy worker and is analysed by it, not failed.
    let second = upload_case(&client, &app, "b.jpg", read(&fixture_images()[1])).await;
    let mut args = env.worker_args();
    args.occlusion_grid = 0;
    let healthy = InProcessWorker::spawn(args);
    assert_eq!(wait_final(&client, &app, second).await["status"], "done");
    healthy.stop().await.unwrap();
    app.stop().await;
}
