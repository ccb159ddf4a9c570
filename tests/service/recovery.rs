//! Nothing is lost: lost jobs are found again in PostgreSQL, dead workers' cases are taken over,
//! and a bad image fails once with its reason.

use std::time::Duration;

use mole_storage::{Claim, EventKind, NewCase, StoredImage};
use uuid::Uuid;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_whose_job_vanished_from_redis_is_queued_again_and_analysed() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[2])).await;

    // Redis loses everything of this queue before any worker saw the job.
    assert!(env.flush_queue().await > 0, "the job was in Redis");
    let mut args = env.worker_args();
    args.requeue_after_secs = 1;
    args.sweep_interval_secs = 1;
    let worker = InProcessWorker::spawn(args);

    let view = wait_final(&client, &app, id).await;
    assert_eq!(view["status"], "done", "{view}");
    let events = env.store.events(id).await.unwrap();
    let requeued = events
        .iter()
        .find(|e| e.kind == EventKind::Requeued)
        .expect("a requeued event");
    assert_eq!(requeued.actor, "system:recovery");
    assert_eq!(requeued.detail["was"], "queued");
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Completed)
            .count(),
        1
    );
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_held_by_a_dead_worker_is_taken_over_when_its_lease_runs_out() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let id = upload_case(&client, &app, "lesion.jpg", read(&fixture_images()[3])).await;
    env.flush_queue().await;

    // A worker claims the case for one second and dies without a word.
    let claim = env
        .store
        .claim(id, "doomed", Duration::from_secs(1), 5, None)
        .await
        .unwrap();
    assert!(matches!(claim, Claim::Claimed { .. }));

    let mut args = env.worker_args();
    args.requeue_after_secs = 1;
    args.sweep_interval_secs = 1;
    let worker = InProcessWorker::spawn(args);
    let view = wait_final(&client, &app, id).await;
    assert_eq!(view["status"], "done", "{view}");

    let case = env.store.case(id).await.unwrap().unwrap();
    assert_eq!(case.attempts, 2, "the dead claim and the successful one");
    let events = env.store.events(id).await.unwrap();
    let requeued = events
        .iter()
        .find(|e| e.kind == EventKind::Requeued)
        .expect("a requeued event");
    assert_eq!(requeued.detail["was"], "processing");
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_case_whose_image_cannot_be_decoded_fails_once_with_a_clear_reason() {
    let env = TestEnv::new().await;
    // The web process refuses such files, so store one behind its back: a JPEG cut in half.
    let jpeg = read(&fixture_images()[0]);
    let truncated = jpeg[..jpeg.len() / 2].to_vec();
    let id = Uuid::new_v4();
    env.store
        .create_case(NewCase {
            id,
            request_id: "bad-image".to_owned(),
            uploader: "0".repeat(64),
            image_sha256: "1".repeat(64),
            image: StoredImage {
                content_type: "image/jpeg".to_owned(),
                width: 600,
                height: 450,
                bytes: truncated,
            },
            model_input: None,
        })
        .await
        .unwrap();
    env.push(id).await;
    let worker = InProcessWorker::spawn(env.worker_args());
    wait_all_final(&env.store, &[id]).await;
    // A graceful stop finishes whatever the worker still had in hand, retries included.
    worker.stop().await.unwrap();

    let case = env.store.case(id).await.unwrap().unwrap();
    assert_eq!(case.status.as_str(), "failed");
    assert_eq!(case.error_code.as_deref(), Some("truncated_image"));
    assert!(
        case.error.as_deref().unwrap().contains("truncated"),
        "{:?}",
        case.error
    );
    assert_eq!(case.attempts, 1, "a bad image is not retried");
    let events = env.store.events(id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Failed)
            .count(),
        1
    );
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Started)
            .count(),
        1
    );

    // The uploader reads the reason on the JSON endpoint.
    let app = App::spawn(&env).await;
    let view = case_json(&http(), &app, id).await;
    assert_eq!(view["status"], "failed");
    assert_eq!(view["error"]["code"], "truncated_image");
    app.stop().await;
}
