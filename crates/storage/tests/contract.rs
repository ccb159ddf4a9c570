//! The storage contract: every scenario here runs against both databases — SQLite (a file in a
//! temporary directory) and PostgreSQL (a private database on `TEST_DATABASE_URL`, default
//! `postgres://postgres@127.0.0.1:5432/postgres`) — through the one [`Store`] interface, so the
//! two implementations cannot drift apart.

use std::time::Duration;

use chrono::Utc;
use futures::StreamExt;
use mole_storage::*;
use serde_json::json;
use sqlx::Connection;
use uuid::Uuid;

/// A store on a private database, removed when dropped.
struct Env {
    store: Store,
    _dir: Option<TempDir>,
    pg: Option<(String, String)>,
}

/// A directory removed when dropped.
struct TempDir(std::path::PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Drop for Env {
    fn drop(&mut self) {
        if let Some((base, name)) = self.pg.take() {
            // Its own runtime on its own thread: the test's runtime is ending. FORCE ends the
            // store's connections.
            std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    if let Ok(mut admin) = sqlx::PgConnection::connect(&base).await {
                        let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await;
                    }
                });
            })
            .join()
            .ok();
        }
    }
}

async fn sqlite() -> Env {
    let dir = std::env::temp_dir().join(format!("mole-contract-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = Store::open_sqlite(&dir.join("mole.db"), &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Env {
        store,
        _dir: Some(TempDir(dir)),
        pg: None,
    }
}

async fn postgres() -> Env {
    let base = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned());
    let name = format!("mole_contract_{}", Uuid::new_v4().simple());
    let mut admin = sqlx::PgConnection::connect(&base)
        .await
        .expect("PostgreSQL at TEST_DATABASE_URL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut admin)
        .await
        .unwrap();
    admin.close().await.ok();
    let slash = base.rfind('/').unwrap();
    let url = format!("{}/{}", &base[..slash], name);
    let store = Store::connect(&url, &StoreOptions::default())
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Env {
        store,
        _dir: None,
        pg: Some((base, name)),
    }
}

/// One test per database for each scenario.
macro_rules! contract {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test]
                async fn $name() {
                    let env = super::sqlite().await;
                    super::$name(&env.store).await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test]
                async fn $name() {
                    let env = super::postgres().await;
                    super::$name(&env.store).await;
                }
            )*
        }
    };
}

contract!(
    an_upload_is_one_case_with_its_image_and_two_events_and_a_resubmission_is_the_same_case,
    a_claimed_case_completes_once_and_only_by_its_holder,
    a_claim_says_why_it_cannot_be_granted_and_gives_up_after_the_attempts,
    released_failed_and_refused_cases_end_as_the_worker_says,
    lost_jobs_are_found_again_by_the_sweep,
    views_are_recorded_once_per_window,
    a_deleted_case_keeps_only_its_tombstone_and_trail,
    the_listener_hears_every_change_but_views,
    staff_accounts_sessions_and_sign_in_throttling,
    reviews_are_versioned_and_counted,
    the_clinic_list_filters_sorts_counts_and_exports,
    an_uploader_sees_their_cases_and_the_queue_ahead,
    the_audit_trail_refuses_changes,
);

fn new_case(uploader: &str, bytes: &[u8]) -> NewCase {
    NewCase {
        id: Uuid::new_v4(),
        request_id: format!("req-{}", Uuid::new_v4().simple()),
        uploader: uploader.to_owned(),
        image_sha256: format!("{:x}", bytes.len()) + &hex(bytes),
        image: StoredImage {
            content_type: "image/png".to_owned(),
            width: 200,
            height: 150,
            bytes: bytes.to_vec(),
        },
        model_input: Some(ModelInput {
            side: 128,
            bytes: b"view".to_vec(),
        }),
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

async fn upload(store: &Store, uploader: &str, bytes: &[u8]) -> Case {
    match store.create_case(new_case(uploader, bytes)).await.unwrap() {
        Created::New(case) => case,
        Created::Existing(_) => panic!("expected a new case"),
    }
}

fn prediction(top: &str, p_malignant: f32) -> NewPrediction {
    let classes = ["akiec", "bcc", "bkl", "df", "mel", "nv", "vasc"]
        .iter()
        .map(|code| ClassProbability {
            code: (*code).to_owned(),
            name: format!("name of {code}"),
            malignant: matches!(*code, "akiec" | "bcc" | "mel"),
            probability: if *code == top { 0.7 } else { 0.05 },
        })
        .collect();
    NewPrediction {
        model_version: "mole-test@1.0.0".to_owned(),
        verdict: if p_malignant >= 0.3 {
            "see_a_doctor".to_owned()
        } else {
            "looks_benign".to_owned()
        },
        p_malignant,
        threshold: 0.3,
        top_class: top.to_owned(),
        classes,
    }
}

fn completion(case_id: Uuid, worker: &str, analysis: Analysis) -> Completion {
    Completion {
        case_id,
        worker: worker.to_owned(),
        analysis,
        queue_ms: 12,
        inference_ms: 34,
        batch_size: 2,
    }
}

const LEASE: Duration = Duration::from_secs(60);

async fn claim(store: &Store, id: Uuid, worker: &str) -> Claim {
    store.claim(id, worker, LEASE, 3, Some(128)).await.unwrap()
}

/// Claims the case as worker "w" and completes it with a diagnosis.
async fn diagnose(store: &Store, id: Uuid, top: &str, p_malignant: f32) {
    claim(store, id, "w").await;
    store
        .complete_batch(&[completion(
            id,
            "w",
            Analysis::Diagnosis(prediction(top, p_malignant)),
        )])
        .await
        .unwrap();
}

async fn kinds(store: &Store, id: Uuid) -> Vec<EventKind> {
    store
        .events(id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect()
}

async fn an_upload_is_one_case_with_its_image_and_two_events_and_a_resubmission_is_the_same_case(
    store: &Store,
) {
    let new = new_case("u1", b"photo-1");
    let id = new.id;
    let Created::New(case) = store.create_case(new.clone()).await.unwrap() else {
        panic!("new case");
    };
    assert_eq!(case.id, id);
    assert_eq!(case.status, CaseStatus::Queued);
    assert_eq!(case.enqueue_count, 1);
    assert!(case.enqueued_at.is_some());
    // The same uploader and bytes again: the same case, nothing written.
    let again = NewCase {
        id: Uuid::new_v4(),
        ..new.clone()
    };
    match store.create_case(again).await.unwrap() {
        Created::Existing(c) => assert_eq!(c.id, id),
        Created::New(_) => panic!("a resubmission made a second case"),
    }
    // Another uploader with the same bytes: a case of their own.
    let other = NewCase {
        id: Uuid::new_v4(),
        uploader: "u2".to_owned(),
        ..new
    };
    assert!(matches!(
        store.create_case(other).await.unwrap(),
        Created::New(_)
    ));
    assert_eq!(
        kinds(store, id).await,
        vec![EventKind::Created, EventKind::Queued]
    );
    let image = store.image(id).await.unwrap().unwrap();
    assert_eq!(image.bytes, b"photo-1");
    assert_eq!((image.width, image.height), (200, 150));
    let state = store.case_state(id).await.unwrap().unwrap();
    assert_eq!(state.case.id, id);
    assert!(state.prediction.is_none() && state.refusal.is_none());
    let events = store.events(id).await.unwrap();
    assert_eq!(state.version, events.last().unwrap().id);
    assert!(store.case(Uuid::new_v4()).await.unwrap().is_none());
    assert_eq!(store.latest_event_id().await.unwrap(), state.version.max(4));
    let counts = store.status_counts().await.unwrap();
    assert!(counts.counts.contains(&(CaseStatus::Queued, 2)));
}

async fn a_claimed_case_completes_once_and_only_by_its_holder(store: &Store) {
    let case = upload(store, "u", b"a").await;
    let Claim::Claimed {
        case: claimed,
        image,
        photo_size,
    } = claim(store, case.id, "w1").await
    else {
        panic!("claimed");
    };
    assert_eq!(claimed.status, CaseStatus::Processing);
    assert_eq!(claimed.attempts, 1);
    assert_eq!(claimed.claimed_by.as_deref(), Some("w1"));
    assert!(claimed.lease_until.unwrap() > Utc::now() + chrono::Duration::seconds(50));
    // The model view was stored for this model's side; the photo's own size is reported.
    assert_eq!(image.bytes, b"view");
    assert_eq!((image.width, image.height), (128, 128));
    assert_eq!(photo_size, (200, 150));
    // Another model side reads the photo.
    let other = upload(store, "u", b"b").await;
    let Claim::Claimed { image, .. } = store
        .claim(other.id, "w1", LEASE, 3, Some(224))
        .await
        .unwrap()
    else {
        panic!("claimed");
    };
    assert_eq!(image.bytes, b"b");
    // A second worker cannot take a held case.
    assert!(matches!(
        claim(store, case.id, "w2").await,
        Claim::Skip(SkipReason::Held)
    ));
    // Only the holder completes it.
    let p = prediction("mel", 0.8);
    let stale = store
        .complete_batch(&[completion(case.id, "w2", Analysis::Diagnosis(p.clone()))])
        .await
        .unwrap();
    assert_eq!(stale, vec![CompletionOutcome::Stale]);
    let outcomes = store
        .complete_batch(&[
            completion(case.id, "w1", Analysis::Diagnosis(p.clone())),
            completion(other.id, "w1", Analysis::Diagnosis(prediction("nv", 0.1))),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        vec![CompletionOutcome::Completed, CompletionOutcome::Completed]
    );
    // Once only.
    let twice = store
        .complete_batch(&[completion(case.id, "w1", Analysis::Diagnosis(p.clone()))])
        .await
        .unwrap();
    assert_eq!(twice, vec![CompletionOutcome::Skipped]);
    let state = store.case_state(case.id).await.unwrap().unwrap();
    assert_eq!(state.case.status, CaseStatus::Done);
    assert_eq!(state.case.queue_ms, Some(12));
    assert_eq!(state.case.batch_size, Some(2));
    assert_eq!(state.case.model_version.as_deref(), Some("mole-test@1.0.0"));
    assert!(state.case.finished_at.is_some() && state.case.lease_until.is_none());
    let got = state.prediction.unwrap();
    assert_eq!(got.result, p);
    assert_eq!(store.prediction(case.id).await.unwrap().unwrap().result, p);
    assert_eq!(
        kinds(store, case.id).await,
        vec![
            EventKind::Created,
            EventKind::Queued,
            EventKind::Started,
            EventKind::Completed
        ]
    );
    let events = store.events(case.id).await.unwrap();
    assert_eq!(events[2].detail, json!({ "attempt": 1 }));
    assert_eq!(events[3].actor, "worker:w1");
    assert_eq!(events[3].detail["top_class"], "mel");
    assert!(matches!(
        claim(store, case.id, "w1").await,
        Claim::Skip(SkipReason::Finished)
    ));
    // The occlusion map: once, for a done case.
    let map = json!({ "grid": 2, "cells": [0.1, 0.2, 0.3, 0.4] });
    assert!(
        store
            .save_explanation(case.id, "w1", "mole-test@1.0.0", &map)
            .await
            .unwrap()
    );
    assert!(
        !store
            .save_explanation(case.id, "w1", "mole-test@1.0.0", &map)
            .await
            .unwrap()
    );
    let state = store.case_state(case.id).await.unwrap().unwrap();
    assert_eq!(state.explanation, Some(map));
    assert_eq!(
        kinds(store, case.id).await.last(),
        Some(&EventKind::Explained)
    );
}

async fn a_claim_says_why_it_cannot_be_granted_and_gives_up_after_the_attempts(store: &Store) {
    assert!(matches!(
        claim(store, Uuid::new_v4(), "w").await,
        Claim::Skip(SkipReason::Missing)
    ));
    let deleted = upload(store, "u", b"d").await;
    assert!(
        store
            .delete_case(deleted.id, &Actor::uploader("u"), None)
            .await
            .unwrap()
    );
    assert!(matches!(
        claim(store, deleted.id, "w").await,
        Claim::Skip(SkipReason::Deleted)
    ));
    // A lease that ran out (0 s) lets another worker take the case over, until the attempts are
    // spent: then the case is failed.
    let case = upload(store, "u", b"x").await;
    for attempt in 1..=3 {
        let Claim::Claimed { case: c, .. } = store
            .claim(case.id, &format!("w{attempt}"), Duration::ZERO, 3, None)
            .await
            .unwrap()
        else {
            panic!("attempt {attempt} claimed");
        };
        assert_eq!(c.attempts, attempt);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let Claim::GaveUp(failed) = store
        .claim(case.id, "w4", Duration::ZERO, 3, None)
        .await
        .unwrap()
    else {
        panic!("gave up");
    };
    assert_eq!(failed.status, CaseStatus::Failed);
    assert_eq!(failed.error_code.as_deref(), Some("gave_up"));
    assert_eq!(kinds(store, case.id).await.last(), Some(&EventKind::Failed));
}

async fn released_failed_and_refused_cases_end_as_the_worker_says(store: &Store) {
    let case = upload(store, "u", b"r").await;
    assert!(matches!(
        claim(store, case.id, "w1").await,
        Claim::Claimed { .. }
    ));
    assert!(
        !store
            .release_for_retry(case.id, "w2", "not mine")
            .await
            .unwrap()
    );
    assert!(
        store
            .release_for_retry(case.id, "w1", "database hiccup")
            .await
            .unwrap()
    );
    let c = store.case(case.id).await.unwrap().unwrap();
    assert_eq!(c.status, CaseStatus::Queued);
    assert!(c.claimed_by.is_none());
    let retrying = store.events(case.id).await.unwrap().pop().unwrap();
    assert_eq!(retrying.kind, EventKind::Retrying);
    assert_eq!(retrying.detail["reason"], "database hiccup");
    // A bad image found by the holder.
    assert!(matches!(
        claim(store, case.id, "w2").await,
        Claim::Claimed { .. }
    ));
    assert!(
        !store
            .fail_claimed(case.id, "w1", "bad_image", "no")
            .await
            .unwrap()
    );
    assert!(
        store
            .fail_claimed(case.id, "w2", "bad_image", "The photo cannot be read.")
            .await
            .unwrap()
    );
    let c = store.case(case.id).await.unwrap().unwrap();
    assert_eq!(c.status, CaseStatus::Failed);
    assert_eq!(c.error.as_deref(), Some("The photo cannot be read."));
    assert!(
        !store
            .fail_case(case.id, &Actor::system("t"), "x", "y")
            .await
            .unwrap()
    );
    // A refusal.
    let refused = upload(store, "u", b"dark").await;
    claim(store, refused.id, "w").await;
    let r = NewRefusal {
        model_version: "mole-test@1.0.0".to_owned(),
        reason: "too_dark".to_owned(),
        detail: json!({ "luma": 0.02 }),
    };
    let out = store
        .complete_batch(&[completion(refused.id, "w", Analysis::Refusal(r.clone()))])
        .await
        .unwrap();
    assert_eq!(out, vec![CompletionOutcome::Completed]);
    let state = store.case_state(refused.id).await.unwrap().unwrap();
    assert_eq!(state.case.status, CaseStatus::Refused);
    assert_eq!(state.refusal.unwrap().result, r);
    assert!(state.prediction.is_none());
    assert_eq!(
        kinds(store, refused.id).await.last(),
        Some(&EventKind::Refused)
    );
}

async fn lost_jobs_are_found_again_by_the_sweep(store: &Store) {
    let fresh = upload(store, "u", b"fresh").await;
    let held = upload(store, "u", b"held").await;
    let dead = upload(store, "u", b"dead").await;
    claim(store, held.id, "alive").await;
    store
        .claim(dead.id, "dead", Duration::ZERO, 5, None)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let actor = Actor::system("recovery");
    // Pushed a minute ago at most: only the dead worker's case.
    let moved = store
        .requeue_stranded(Duration::from_secs(60), 100, &actor)
        .await
        .unwrap();
    assert_eq!(
        moved.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![dead.id]
    );
    let c = store.case(dead.id).await.unwrap().unwrap();
    assert_eq!(c.status, CaseStatus::Queued);
    assert_eq!(c.enqueue_count, 2);
    let requeued = store.events(dead.id).await.unwrap().pop().unwrap();
    assert_eq!(requeued.kind, EventKind::Requeued);
    assert_eq!(requeued.detail["was"], "processing");
    assert_eq!(requeued.detail["enqueue_count"], 2);
    assert_eq!(requeued.detail["reason"], "the worker's lease ran out");
    // Any push older than 10 ms: the queued ones too, never the held one.
    tokio::time::sleep(Duration::from_millis(30)).await;
    let mut moved: Vec<Uuid> = store
        .requeue_stranded(Duration::from_millis(10), 100, &actor)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    moved.sort();
    let mut expected = vec![fresh.id, dead.id];
    expected.sort();
    assert_eq!(moved, expected);
    let again = store.events(fresh.id).await.unwrap().pop().unwrap();
    assert_eq!(again.detail["reason"], "the job was not picked up");
    assert!(
        store
            .requeue_stranded(Duration::from_secs(60), 100, &actor)
            .await
            .unwrap()
            .is_empty()
    );
    // After a restart of the one embedded process: every unfinished case, held or not.
    let mut all: Vec<Uuid> = store
        .requeue_unfinished(100, &Actor::system("start"))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    all.sort();
    let mut expected = vec![fresh.id, held.id, dead.id];
    expected.sort();
    assert_eq!(all, expected);
    let taken = store.events(held.id).await.unwrap().pop().unwrap();
    assert_eq!(taken.detail["reason"], "the process that held it stopped");
    let c = store.case(held.id).await.unwrap().unwrap();
    assert_eq!((c.status, c.claimed_by), (CaseStatus::Queued, None));
}

async fn views_are_recorded_once_per_window(store: &Store) {
    let case = upload(store, "u", b"v").await;
    let viewer = Actor::visitor();
    let window = Duration::from_secs(3600);
    assert!(
        store
            .record_view(case.id, &viewer, Some("r1"), window)
            .await
            .unwrap()
    );
    assert!(
        !store
            .record_view(case.id, &viewer, Some("r2"), window)
            .await
            .unwrap()
    );
    assert!(
        store
            .record_view(case.id, &Actor::uploader("u"), None, window)
            .await
            .unwrap()
    );
    // A window that has passed records again.
    tokio::time::sleep(Duration::from_millis(30)).await;
    assert!(
        store
            .record_view(case.id, &viewer, None, Duration::from_millis(10))
            .await
            .unwrap()
    );
    let views = kinds(store, case.id)
        .await
        .into_iter()
        .filter(|k| *k == EventKind::Viewed)
        .count();
    assert_eq!(views, 3);
    // Views do not change the state's version.
    let state = store.case_state(case.id).await.unwrap().unwrap();
    let queued = store.events(case.id).await.unwrap()[1].id;
    assert_eq!(state.version, queued);
    store
        .record_staff_view(case.id, &Actor::staff("rita"), None)
        .await
        .unwrap();
    let last = store.events(case.id).await.unwrap().pop().unwrap();
    assert_eq!(
        (last.kind, last.actor.as_str()),
        (EventKind::Viewed, "staff:rita")
    );
}

async fn a_deleted_case_keeps_only_its_tombstone_and_trail(store: &Store) {
    let case = done_case(store, "u", b"del", "nv", 0.1).await;
    let actor = Actor::uploader("u");
    assert!(store.delete_case(case.id, &actor, Some("r")).await.unwrap());
    assert!(!store.delete_case(case.id, &actor, None).await.unwrap());
    let c = store.case(case.id).await.unwrap().unwrap();
    assert!(c.is_deleted());
    assert_eq!((c.uploader.as_str(), c.image_sha256.as_str()), ("", ""));
    assert!(store.image(case.id).await.unwrap().is_none());
    assert!(store.prediction(case.id).await.unwrap().is_none());
    assert_eq!(
        kinds(store, case.id).await.last(),
        Some(&EventKind::Deleted)
    );
    // The slot is free: the same photo makes a new case.
    assert!(matches!(
        store.create_case(new_case("u", b"del")).await.unwrap(),
        Created::New(_)
    ));
    assert!(store.uploader_cases("u", 10).await.unwrap().len() == 1);
}

async fn the_listener_hears_every_change_but_views(store: &Store) {
    let mut listener = store.listener().await.unwrap();
    let case = upload(store, "u", b"l").await;
    store
        .record_view(case.id, &Actor::visitor(), None, Duration::from_secs(60))
        .await
        .unwrap();
    diagnose(store, case.id, "nv", 0.1).await;
    let mut heard = Vec::new();
    while heard.len() < 4 {
        let signal = tokio::time::timeout(Duration::from_secs(5), listener.recv())
            .await
            .expect("an event within 5 s")
            .unwrap()
            .expect("listening");
        assert_eq!(signal.case_id, case.id);
        heard.push(signal.kind);
    }
    assert_eq!(heard, ["created", "queued", "started", "completed"]);
    let events = store.events(case.id).await.unwrap();
    assert_eq!(
        store.latest_event_id().await.unwrap(),
        events.last().unwrap().id
    );
}

async fn staff_accounts_sessions_and_sign_in_throttling(store: &Store) {
    let rita = store
        .create_account("rita", Role::Admin, "hash-1")
        .await
        .unwrap()
        .unwrap();
    assert!(
        store
            .create_account("rita", Role::Reviewer, "x")
            .await
            .unwrap()
            .is_none()
    );
    store
        .create_account("bob", Role::Reviewer, "hash-b")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        store.account_by_username("rita").await.unwrap().unwrap().id,
        rita.id
    );
    assert_eq!(
        store.account(rita.id).await.unwrap().unwrap().role,
        Role::Admin
    );
    let names: Vec<String> = store
        .accounts()
        .await
        .unwrap()
        .into_iter()
        .map(|a| a.username)
        .collect();
    assert_eq!(names, ["bob", "rita"]);
    // A user name the schema refuses.
    assert!(
        store
            .create_account("Not Valid!", Role::Reviewer, "x")
            .await
            .is_err()
    );
    // Sign-in throttling: the account's limit, then refused with a wait.
    let limits = SignInLimits {
        per_account: 2,
        per_address: 100,
        lockout: Duration::from_secs(600),
    };
    for _ in 0..2 {
        assert_eq!(
            store
                .reserve_sign_in("rita", "10.0.0.1", &limits)
                .await
                .unwrap(),
            SignInGate::Open
        );
    }
    match store
        .reserve_sign_in("rita", "10.0.0.2", &limits)
        .await
        .unwrap()
    {
        SignInGate::Refused { retry_after_secs } => {
            assert!(
                (590..=600).contains(&retry_after_secs),
                "{retry_after_secs}"
            )
        }
        SignInGate::Open => panic!("the third try was let through"),
    }
    // A new password lifts the lock and ends sessions (new epoch).
    let changed = store.set_password("rita", "hash-2").await.unwrap().unwrap();
    assert_eq!(changed.session_epoch, rita.session_epoch + 1);
    assert_eq!(changed.password_hash, "hash-2");
    assert_eq!(
        store
            .reserve_sign_in("rita", "10.0.0.1", &limits)
            .await
            .unwrap(),
        SignInGate::Open
    );
    store.sign_in_succeeded("rita", "10.0.0.1").await.unwrap();
    store.note_sign_in(rita.id).await.unwrap();
    assert!(
        store
            .account(rita.id)
            .await
            .unwrap()
            .unwrap()
            .last_sign_in_at
            .is_some()
    );
    assert!(store.set_account_disabled(rita.id, true).await.unwrap());
    assert!(!store.set_account_disabled(rita.id, true).await.unwrap());
    let disabled = store.account(rita.id).await.unwrap().unwrap();
    assert!(disabled.disabled_at.is_some());
    assert_eq!(disabled.session_epoch, changed.session_epoch + 1);
    assert!(store.set_account_disabled(rita.id, false).await.unwrap());
    // Sessions.
    let later = Utc::now() + chrono::Duration::hours(1);
    let data = json!({ "staff": { "id": rita.id } });
    assert!(store.session_create("s1", &data, later).await.unwrap());
    assert!(!store.session_create("s1", &data, later).await.unwrap());
    let (loaded, _) = store.session_load("s1").await.unwrap().unwrap();
    assert_eq!(loaded, data);
    let newer = json!({ "staff": null });
    store.session_save("s1", &newer, later).await.unwrap();
    assert_eq!(store.session_load("s1").await.unwrap().unwrap().0, newer);
    let past = Utc::now() - chrono::Duration::seconds(1);
    store.session_save("s2", &data, past).await.unwrap();
    assert!(store.session_load("s2").await.unwrap().is_none());
    assert_eq!(store.delete_expired_sessions().await.unwrap(), 1);
    store.session_delete("s1").await.unwrap();
    assert!(store.session_load("s1").await.unwrap().is_none());
    // The staff's own trail, newest first.
    store
        .staff_event("staff:rita", "sign_in", Some("r1"), json!({}))
        .await
        .unwrap();
    store
        .staff_event("staff:rita", "export", None, json!({ "rows": 3 }))
        .await
        .unwrap();
    let trail = store.staff_events(10).await.unwrap();
    assert_eq!(trail.len(), 2);
    assert_eq!(trail[0].action, "export");
    assert_eq!(trail[0].detail, json!({ "rows": 3 }));
}

async fn done_case(store: &Store, uploader: &str, bytes: &[u8], top: &str, p: f32) -> Case {
    let case = upload(store, uploader, bytes).await;
    diagnose(store, case.id, top, p).await;
    store.case(case.id).await.unwrap().unwrap()
}

async fn reviews_are_versioned_and_counted(store: &Store) {
    let rita = store
        .create_account("rita", Role::Reviewer, "h")
        .await
        .unwrap()
        .unwrap();
    let case = done_case(store, "u", b"rev", "mel", 0.8).await;
    let review = |diagnosis: &str, note: Option<&str>| NewReview {
        case_id: case.id,
        reviewer: rita.id,
        reviewer_name: "rita".to_owned(),
        diagnosis: diagnosis.to_owned(),
        verdict: "see_a_doctor".to_owned(),
        note: note.map(str::to_owned),
        request_id: Some("r".to_owned()),
    };
    assert_eq!(
        store.add_review(&review("mel", None)).await.unwrap(),
        Some(1)
    );
    assert_eq!(
        store
            .add_review(&review("bcc", Some("Mrs X, left arm")))
            .await
            .unwrap(),
        Some(2)
    );
    let reviews = store.reviews(case.id).await.unwrap();
    assert_eq!(reviews.len(), 2);
    assert_eq!(reviews[0].model_diagnosis.as_deref(), Some("mel"));
    assert_eq!(reviews[1].note.as_deref(), Some("Mrs X, left arm"));
    let reviewed = store.events(case.id).await.unwrap().pop().unwrap();
    assert_eq!(reviewed.kind, EventKind::Reviewed);
    assert_eq!(reviewed.detail["agrees_with_model"], false);
    assert_eq!(reviewed.detail["note"], true);
    let counts = store.agreement_counts().await.unwrap();
    assert_eq!(counts.len(), 1);
    assert_eq!(
        (
            counts[0].model_diagnosis.as_str(),
            counts[0].review_diagnosis.as_str(),
            counts[0].count
        ),
        ("mel", "bcc", 1)
    );
    let day_start = Utc::now() - chrono::Duration::hours(1);
    let summary = store.clinic_summary(day_start).await.unwrap();
    assert_eq!(
        (
            summary.cases_today,
            summary.reviewed,
            summary.agreeing,
            summary.waiting_for_review
        ),
        (1, 1, 0, 0)
    );
    // Deleting the case removes the notes, not the reviews.
    store
        .delete_case(case.id, &Actor::staff("rita"), None)
        .await
        .unwrap();
    let reviews = store.reviews(case.id).await.unwrap();
    assert_eq!(reviews.len(), 2);
    assert!(reviews.iter().all(|r| r.note.is_none()));
    assert_eq!(store.add_review(&review("nv", None)).await.unwrap(), None);
}

async fn the_clinic_list_filters_sorts_counts_and_exports(store: &Store) {
    let a = done_case(store, "u", b"1", "mel", 0.9).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let b = done_case(store, "u", b"2", "nv", 0.05).await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let c = upload(store, "u", b"3").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let d = done_case(store, "u", b"4", "bcc", 0.6).await;
    store
        .delete_case(d.id, &Actor::uploader("u"), None)
        .await
        .unwrap();
    let all = CaseFilter::default();
    let newest = CaseSort::default();
    let ids = |records: Vec<CaseRecord>| records.into_iter().map(|r| r.id).collect::<Vec<_>>();
    assert_eq!(
        ids(store.list_cases(&all, newest, 0, 50).await.unwrap()),
        vec![c.id, b.id, a.id]
    );
    assert_eq!(store.count_cases(&all).await.unwrap(), 3);
    assert_eq!(
        ids(store.list_cases(&all, newest, 1, 1).await.unwrap()),
        vec![b.id]
    );
    let by_risk = CaseSort {
        key: SortKey::PMalignant,
        descending: true,
    };
    // No result sorts last either way.
    assert_eq!(
        ids(store.list_cases(&all, by_risk, 0, 50).await.unwrap()),
        vec![a.id, b.id, c.id]
    );
    let see_a_doctor = CaseFilter {
        verdict: Some("see_a_doctor".to_owned()),
        ..CaseFilter::default()
    };
    assert_eq!(
        ids(store
            .list_cases(&see_a_doctor, newest, 0, 50)
            .await
            .unwrap()),
        vec![a.id]
    );
    let deleted = CaseFilter {
        status: Some(StatusFilter::Deleted),
        ..CaseFilter::default()
    };
    assert_eq!(store.count_cases(&deleted).await.unwrap(), 1);
    let queued = CaseFilter {
        status: Some(StatusFilter::Live(CaseStatus::Queued)),
        ..CaseFilter::default()
    };
    assert_eq!(
        ids(store.list_cases(&queued, newest, 0, 50).await.unwrap()),
        vec![c.id]
    );
    let since_b = CaseFilter {
        from: Some(b.created_at),
        ..CaseFilter::default()
    };
    assert_eq!(store.count_cases(&since_b).await.unwrap(), 2);
    let until_b = CaseFilter {
        until: Some(b.created_at),
        ..CaseFilter::default()
    };
    assert_eq!(
        ids(store.list_cases(&until_b, newest, 0, 50).await.unwrap()),
        vec![a.id]
    );
    let record = &store.list_cases(&all, newest, 2, 1).await.unwrap()[0];
    assert_eq!(record.top_class.as_deref(), Some("mel"));
    assert_eq!(record.classes.len(), 7);
    let exported: Vec<Uuid> = store
        .export_cases(&all, newest)
        .map(|r| r.unwrap().id)
        .collect()
        .await;
    assert_eq!(exported, vec![c.id, b.id, a.id]);
    assert_eq!(
        store.model_versions().await.unwrap(),
        vec!["mole-test@1.0.0".to_owned()]
    );
}

async fn an_uploader_sees_their_cases_and_the_queue_ahead(store: &Store) {
    let first = upload(store, "me", b"q1").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    let second = upload(store, "me", b"q2").await;
    tokio::time::sleep(Duration::from_millis(5)).await;
    upload(store, "someone else", b"q3").await;
    let mine = store.uploader_cases("me", 10).await.unwrap();
    assert_eq!(
        mine.iter().map(|c| c.id).collect::<Vec<_>>(),
        vec![second.id, first.id]
    );
    let figures = store.queue_figures(second.id).await.unwrap();
    assert_eq!(figures.ahead, 1);
    assert_eq!(figures.recent_finished, 0);
    assert_eq!(figures.typical_secs, None);
    // Three finished cases: the median of their times to a result.
    for bytes in [b"f1", b"f2", b"f3"] {
        done_case(store, "other", bytes, "nv", 0.1).await;
    }
    let figures = store.queue_figures(second.id).await.unwrap();
    assert_eq!(figures.recent_finished, 3);
    let typical = figures.typical_secs.unwrap();
    assert!((0.0..5.0).contains(&typical), "{typical}");
    assert!(figures.recent_span_secs >= 0.0 && figures.recent_span_secs < 5.0);
}

async fn the_audit_trail_refuses_changes(store: &Store) {
    let case = upload(store, "u", b"t").await;
    let (update, delete) = (
        "UPDATE case_events SET actor = 'someone else' WHERE case_id = $1",
        "DELETE FROM case_events WHERE case_id = $1",
    );
    match (store.pg_pool(), store.sqlite_pool()) {
        (Some(pool), _) => {
            for sql in [update, delete] {
                assert!(sqlx::query(sql).bind(case.id).execute(pool).await.is_err());
            }
        }
        (_, Some(pool)) => {
            for sql in [update, delete] {
                assert!(sqlx::query(sql).bind(case.id).execute(pool).await.is_err());
            }
        }
        _ => unreachable!(),
    }
    assert_eq!(store.events(case.id).await.unwrap().len(), 2);
}

/// Two times the same up to the microsecond PostgreSQL keeps (it rounds).
fn same_time(a: chrono::DateTime<Utc>, b: chrono::DateTime<Utc>) -> bool {
    (a - b)
        .num_nanoseconds()
        .is_some_and(|ns| ns.abs() <= 1_000)
}

fn same_opt_time(a: Option<chrono::DateTime<Utc>>, b: Option<chrono::DateTime<Utc>>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => same_time(a, b),
        (None, None) => true,
        _ => false,
    }
}

/// A clinic's worth of cases in every state, on `store`; their ids.
async fn clinic(store: &Store) -> Vec<Uuid> {
    let rita = store
        .create_account("rita", Role::Admin, "$argon2id$hash")
        .await
        .unwrap()
        .unwrap();
    store
        .staff_event("staff:rita", "sign_in", Some("r0"), json!({ "ok": true }))
        .await
        .unwrap();
    let reviewed = done_case(store, "u1", b"reviewed", "mel", 0.8).await;
    store
        .save_explanation(reviewed.id, "w", "mole-test@1.0.0", &json!({ "grid": 1 }))
        .await
        .unwrap();
    store
        .record_view(reviewed.id, &Actor::uploader("u1"), None, LEASE)
        .await
        .unwrap();
    for (diagnosis, note) in [("mel", None), ("bcc", Some("left arm"))] {
        store
            .add_review(&NewReview {
                case_id: reviewed.id,
                reviewer: rita.id,
                reviewer_name: "rita".to_owned(),
                diagnosis: diagnosis.to_owned(),
                verdict: "see_a_doctor".to_owned(),
                note: note.map(str::to_owned),
                request_id: None,
            })
            .await
            .unwrap();
    }
    let refused = upload(store, "u1", b"refused").await;
    claim(store, refused.id, "w").await;
    store
        .complete_batch(&[completion(
            refused.id,
            "w",
            Analysis::Refusal(NewRefusal {
                model_version: "mole-test@1.0.0".to_owned(),
                reason: "not_a_lesion".to_owned(),
                detail: json!({ "ood": 0.9 }),
            }),
        )])
        .await
        .unwrap();
    let queued = upload(store, "u2", b"queued").await;
    let deleted = done_case(store, "u2", b"deleted", "nv", 0.1).await;
    store
        .delete_case(deleted.id, &Actor::uploader("u2"), Some("r9"))
        .await
        .unwrap();
    vec![reviewed.id, refused.id, queued.id, deleted.id]
}

/// Exports `from`, imports into `to`, and checks that every case, photo, result, audit event,
/// review and account arrived as it was; then that importing again changes nothing.
async fn round_trip(from: &Store, to: &Store) {
    let ids = clinic(from).await;
    let mut bundle = Vec::new();
    assert_eq!(from.export_bundle(&mut bundle).await.unwrap(), 4);
    let counts = to.import_bundle(&bundle[..]).await.unwrap();
    let events: usize = {
        let mut n = 0;
        for id in &ids {
            n += from.events(*id).await.unwrap().len();
        }
        n
    };
    assert_eq!(
        counts,
        ImportCounts {
            cases: 4,
            skipped: 0,
            events: events as u64,
            accounts: 1
        }
    );
    for id in &ids {
        let (a, b) = (
            from.case(*id).await.unwrap().unwrap(),
            to.case(*id).await.unwrap().unwrap(),
        );
        assert_eq!(
            (
                a.status,
                &a.request_id,
                &a.uploader,
                &a.image_sha256,
                a.attempts
            ),
            (
                b.status,
                &b.request_id,
                &b.uploader,
                &b.image_sha256,
                b.attempts
            )
        );
        assert_eq!(
            (
                &a.model_version,
                a.queue_ms,
                a.review_version,
                &a.error_code
            ),
            (
                &b.model_version,
                b.queue_ms,
                b.review_version,
                &b.error_code
            )
        );
        assert!(same_time(a.created_at, b.created_at));
        assert!(same_opt_time(a.finished_at, b.finished_at));
        assert!(same_opt_time(a.deleted_at, b.deleted_at));
        let (sa, sb) = (
            from.case_state(*id).await.unwrap().unwrap(),
            to.case_state(*id).await.unwrap().unwrap(),
        );
        assert_eq!(
            sa.prediction.map(|p| p.result),
            sb.prediction.map(|p| p.result)
        );
        assert_eq!(sa.refusal.map(|r| r.result), sb.refusal.map(|r| r.result));
        assert_eq!(sa.explanation, sb.explanation);
        let (ia, ib) = (from.image(*id).await.unwrap(), to.image(*id).await.unwrap());
        assert_eq!(ia.map(|i| i.bytes), ib.map(|i| i.bytes));
        let (ea, eb) = (
            from.events(*id).await.unwrap(),
            to.events(*id).await.unwrap(),
        );
        assert_eq!(ea.len(), eb.len());
        for (x, y) in ea.iter().zip(&eb) {
            assert_eq!(
                (x.kind, &x.actor, &x.request_id, &x.detail),
                (y.kind, &y.actor, &y.request_id, &y.detail)
            );
            assert!(same_time(x.at, y.at));
        }
        let (ra, rb) = (
            from.reviews(*id).await.unwrap(),
            to.reviews(*id).await.unwrap(),
        );
        assert_eq!(ra.len(), rb.len());
        for (x, y) in ra.iter().zip(&rb) {
            assert_eq!(
                (x.version, &x.diagnosis, &x.note, &x.reviewer),
                (y.version, &y.diagnosis, &y.note, &y.reviewer)
            );
        }
    }
    assert_eq!(
        from.reviews(ids[0]).await.unwrap()[1].note.as_deref(),
        Some("left arm")
    );
    let rita = to.account_by_username("rita").await.unwrap().unwrap();
    assert_eq!(rita.password_hash, "$argon2id$hash");
    assert_eq!(to.staff_events(10).await.unwrap().len(), 1);
    // Again: everything is there already.
    let again = to.import_bundle(&bundle[..]).await.unwrap();
    assert_eq!(
        again,
        ImportCounts {
            cases: 0,
            skipped: 4,
            events: 0,
            accounts: 0
        }
    );
    assert_eq!(to.staff_events(10).await.unwrap().len(), 1);
    assert_eq!(
        to.events(ids[0]).await.unwrap().len(),
        from.events(ids[0]).await.unwrap().len()
    );
    // The moved clinic works on: the queued case can be claimed and completed.
    assert!(matches!(
        claim(to, ids[2], "new-worker").await,
        Claim::Claimed { .. }
    ));
}

#[tokio::test]
async fn a_bundle_exported_from_sqlite_imports_into_postgres_with_every_case_result_and_event() {
    let (from, to) = (sqlite().await, postgres().await);
    round_trip(&from.store, &to.store).await;
}

#[tokio::test]
async fn a_bundle_exported_from_postgres_imports_into_sqlite_with_every_case_result_and_event() {
    let (from, to) = (postgres().await, sqlite().await);
    round_trip(&from.store, &to.store).await;
}

#[tokio::test]
async fn a_file_that_is_not_a_bundle_is_refused_before_anything_is_written() {
    let env = sqlite().await;
    for input in [&b""[..], b"{\"case\": 1}\n", b"not json\n"] {
        let err = env.store.import_bundle(input).await.unwrap_err();
        assert!(matches!(err, BundleError::Format(_)), "{err}");
    }
    let future = br#"{"header":{"format":"mole-case-bundle","version":99,"exported_at":"2026-01-01T00:00:00Z","source":"x"}}"#;
    let err = env.store.import_bundle(&future[..]).await.unwrap_err();
    assert!(err.to_string().contains("version 99"), "{err}");
    assert_eq!(env.store.count_all_cases().await.unwrap(), 0);
}
