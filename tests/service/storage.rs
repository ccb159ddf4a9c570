//! Storage guarantees the job flow relies on.

use std::time::Duration;

use mole_storage::{
    Analysis, Claim, ClassProbability, Completion, CompletionOutcome, EventKind, ModelInput,
    NewCase, NewPrediction, SkipReason, StoredImage,
};
use uuid::Uuid;

use crate::common::*;

async fn stored_case(env: &TestEnv) -> Uuid {
    let id = Uuid::new_v4();
    env.store
        .create_case(NewCase {
            id,
            request_id: "req-1".to_owned(),
            uploader: "a".repeat(64),
            image_sha256: Uuid::new_v4().simple().to_string(),
            image: StoredImage {
                content_type: "image/png".to_owned(),
                width: 1,
                height: 1,
                bytes: vec![1, 2, 3],
            },
            model_input: None,
        })
        .await
        .unwrap();
    id
}

fn completion(id: Uuid, worker: &str) -> Completion {
    Completion {
        case_id: id,
        worker: worker.to_owned(),
        analysis: Analysis::Diagnosis(NewPrediction {
            model_version: "m@1".to_owned(),
            verdict: "looks_benign".to_owned(),
            p_malignant: 0.1,
            threshold: 0.33,
            top_class: "nv".to_owned(),
            classes: vec![ClassProbability {
                code: "nv".to_owned(),
                name: "Melanocytic nevus".to_owned(),
                malignant: false,
                probability: 1.0,
            }],
        }),
        queue_ms: 5,
        inference_ms: 3,
        batch_size: 1,
    }
}

#[tokio::test]
async fn writing_the_same_result_twice_completes_the_case_once() {
    let env = TestEnv::new().await;
    let id = stored_case(&env).await;
    assert!(matches!(
        env.store
            .claim(id, "w1", Duration::from_secs(30), 5, None)
            .await
            .unwrap(),
        Claim::Claimed { .. }
    ));
    let first = env
        .store
        .complete_batch(&[completion(id, "w1")])
        .await
        .unwrap();
    let second = env
        .store
        .complete_batch(&[completion(id, "w2")])
        .await
        .unwrap();
    assert_eq!(first, [CompletionOutcome::Completed]);
    assert_eq!(second, [CompletionOutcome::Skipped]);
    let events = env.store.events(id).await.unwrap();
    assert_eq!(
        events
            .iter()
            .filter(|e| e.kind == EventKind::Completed)
            .count(),
        1
    );
    assert!(matches!(
        env.store
            .claim(id, "w3", Duration::from_secs(30), 5, None)
            .await
            .unwrap(),
        Claim::Skip(SkipReason::Finished)
    ));
}

#[tokio::test]
async fn a_live_claim_keeps_other_workers_out() {
    let env = TestEnv::new().await;
    let id = stored_case(&env).await;
    assert!(matches!(
        env.store
            .claim(id, "w1", Duration::from_secs(30), 5, None)
            .await
            .unwrap(),
        Claim::Claimed { .. }
    ));
    assert!(matches!(
        env.store
            .claim(id, "w2", Duration::from_secs(30), 5, None)
            .await
            .unwrap(),
        Claim::Skip(SkipReason::Held)
    ));
}

#[tokio::test]
async fn a_case_claimed_too_often_fails_with_a_reason() {
    let env = TestEnv::new().await;
    let id = stored_case(&env).await;
    for _ in 0..2 {
        // Zero-length leases: each claim is "dead" at once.
        assert!(matches!(
            env.store
                .claim(id, "w", Duration::ZERO, 2, None)
                .await
                .unwrap(),
            Claim::Claimed { .. }
        ));
    }
    let Claim::GaveUp(case) = env
        .store
        .claim(id, "w", Duration::ZERO, 2, None)
        .await
        .unwrap()
    else {
        panic!("expected to give up");
    };
    assert_eq!(case.status.as_str(), "failed");
    assert_eq!(case.error_code.as_deref(), Some("gave_up"));
}

#[tokio::test]
async fn the_audit_trail_cannot_be_rewritten() {
    let env = TestEnv::new().await;
    let id = stored_case(&env).await;
    let update = sqlx::query("UPDATE case_events SET actor = 'someone else' WHERE case_id = $1")
        .bind(id)
        .execute(env.store.pg_pool().expect("PostgreSQL"))
        .await;
    assert!(update.unwrap_err().to_string().contains("append-only"));
    let delete = sqlx::query("DELETE FROM case_events WHERE case_id = $1")
        .bind(id)
        .execute(env.store.pg_pool().expect("PostgreSQL"))
        .await;
    assert!(delete.unwrap_err().to_string().contains("append-only"));
    // Still the two events the upload wrote: created, queued.
    let kinds: Vec<_> = env
        .store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert_eq!(kinds, [EventKind::Created, EventKind::Queued]);
}

#[tokio::test]
async fn concurrent_sweeps_queue_a_lost_case_again_only_once() {
    let env = TestEnv::new().await;
    let id = stored_case(&env).await;
    // Uploaded and pushed an hour ago, never picked up (the push failed, or Redis lost the job).
    sqlx::query(
        "UPDATE cases SET created_at = now() - interval '1 hour', \
         enqueued_at = now() - interval '1 hour' WHERE id = $1",
    )
    .bind(id)
    .execute(env.store.pg_pool().expect("PostgreSQL"))
    .await
    .unwrap();
    let actor = mole_storage::Actor::system("recovery");
    let after = Duration::from_secs(60);
    let (a, b) = tokio::join!(
        env.store.requeue_stranded(after, 10, &actor),
        env.store.requeue_stranded(after, 10, &actor),
    );
    let found: Vec<Uuid> = a
        .unwrap()
        .into_iter()
        .chain(b.unwrap())
        .map(|r| r.id)
        .collect();
    assert_eq!(found, [id]);
}

#[tokio::test]
async fn a_claim_hands_out_the_model_view_only_to_a_worker_whose_model_it_was_made_for() {
    let env = TestEnv::new().await;
    let make = |id: Uuid| NewCase {
        id,
        request_id: "req-view".to_owned(),
        uploader: "b".repeat(64),
        image_sha256: Uuid::new_v4().simple().to_string(),
        image: StoredImage {
            content_type: "image/png".to_owned(),
            width: 200,
            height: 150,
            bytes: b"the full photo".to_vec(),
        },
        model_input: Some(ModelInput {
            side: 128,
            bytes: b"the model view".to_vec(),
        }),
    };
    for (side, expected, dims) in [
        (Some(128), &b"the model view"[..], (128, 128)),
        (Some(160), &b"the full photo"[..], (200, 150)),
        (None, &b"the full photo"[..], (200, 150)),
    ] {
        let id = Uuid::new_v4();
        env.store.create_case(make(id)).await.unwrap();
        let Claim::Claimed { image, .. } = env
            .store
            .claim(id, "w", Duration::from_secs(30), 5, side)
            .await
            .unwrap()
        else {
            panic!("expected a claim");
        };
        assert_eq!(image.bytes, expected, "model side {side:?}");
        assert_eq!((image.width, image.height), dims, "model side {side:?}");
    }
    // The photo itself is what the case page shows.
    let id = Uuid::new_v4();
    env.store.create_case(make(id)).await.unwrap();
    assert_eq!(
        env.store.image(id).await.unwrap().unwrap().bytes,
        b"the full photo"
    );
}

#[tokio::test]
async fn a_stale_workers_result_is_refused_and_the_current_holder_completes_the_case_once() {
    let env = TestEnv::new().await;
    let id = stored_case(&env).await;
    // w1 claims with a lease that runs out at once; w2 takes the case over.
    assert!(matches!(
        env.store
            .claim(id, "w1", Duration::ZERO, 5, None)
            .await
            .unwrap(),
        Claim::Claimed { .. }
    ));
    assert!(matches!(
        env.store
            .claim(id, "w2", Duration::from_secs(30), 5, None)
            .await
            .unwrap(),
        Claim::Claimed { .. }
    ));
    // w1 finishes late: refused, nothing written.
    let late = env
        .store
        .complete_batch(&[completion(id, "w1")])
        .await
        .unwrap();
    assert_eq!(late, [CompletionOutcome::Stale]);
    assert!(env.store.prediction(id).await.unwrap().is_none());
    assert_eq!(
        env.store.case(id).await.unwrap().unwrap().status.as_str(),
        "processing"
    );
    // w2, the holder, completes it; the trail credits w2, once.
    let current = env
        .store
        .complete_batch(&[completion(id, "w2")])
        .await
        .unwrap();
    assert_eq!(current, [CompletionOutcome::Completed]);
    let completed: Vec<_> = env
        .store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.kind == EventKind::Completed)
        .collect();
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0].actor, "worker:w2");
}

#[tokio::test]
async fn a_case_queued_again_after_its_lease_ran_out_refuses_the_old_workers_result() {
    let env = TestEnv::new().await;
    let id = stored_case(&env).await;
    assert!(matches!(
        env.store
            .claim(id, "w1", Duration::ZERO, 5, None)
            .await
            .unwrap(),
        Claim::Claimed { .. }
    ));
    // The sweep finds the dead lease and queues the case again.
    let requeued = env
        .store
        .requeue_stranded(
            Duration::from_secs(3600),
            10,
            &mole_storage::Actor::system("recovery"),
        )
        .await
        .unwrap();
    assert_eq!(requeued.len(), 1);
    let late = env
        .store
        .complete_batch(&[completion(id, "w1")])
        .await
        .unwrap();
    assert_eq!(late, [CompletionOutcome::Stale]);
    // Nor may it fail the case it no longer holds.
    assert!(
        !env.store
            .fail_claimed(id, "w1", "corrupt_image", "bad")
            .await
            .unwrap()
    );
    let case = env.store.case(id).await.unwrap().unwrap();
    assert_eq!(case.status.as_str(), "queued");
}
