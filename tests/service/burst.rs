//! Two workers share a burst: every case is done exactly once, and batches form.

use std::collections::HashSet;

use futures::StreamExt;
use mole_storage::EventKind;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_share_a_burst_of_fifty_uploads_each_done_exactly_once_in_batches() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();

    // The burst lands in the queue at once: 50 different photos, 16 uploads in flight.
    let images = distinct_images(50);
    let ids: Vec<uuid::Uuid> = futures::stream::iter(images)
        .map(|(name, bytes)| {
            let client = client.clone();
            let app = &app;
            async move { upload_case(&client, app, &name, bytes).await }
        })
        .buffer_unordered(16)
        .collect()
        .await;
    assert_eq!(
        ids.iter().collect::<HashSet<_>>().len(),
        50,
        "50 distinct cases"
    );

    let mut args_a = env.worker_args();
    args_a.name = "burst-a".to_owned();
    let mut args_b = env.worker_args();
    args_b.name = "burst-b".to_owned();
    let a = InProcessWorker::spawn(args_a);
    let b = InProcessWorker::spawn(args_b);
    wait_all_final(&env.store, &ids).await;
    a.stop().await.unwrap();
    b.stop().await.unwrap();

    let mut workers = HashSet::new();
    let mut largest_batch = 0;
    for id in &ids {
        let case = env.store.case(*id).await.unwrap().unwrap();
        assert_eq!(case.status.as_str(), "done", "case {id}");
        assert!(env.store.prediction(*id).await.unwrap().is_some());
        let events = env.store.events(*id).await.unwrap();
        let completed: Vec<_> = events
            .iter()
            .filter(|e| e.kind == EventKind::Completed)
            .collect();
        assert_eq!(completed.len(), 1, "case {id} completed once: {events:?}");
        workers.insert(completed[0].actor.clone());
        largest_batch = largest_batch.max(case.batch_size.unwrap());
    }
    let names: HashSet<&str> = workers
        .iter()
        .map(|a| if a.contains("burst-a") { "a" } else { "b" })
        .collect();
    assert_eq!(names.len(), 2, "both workers took part: {workers:?}");
    assert!(largest_batch > 1, "no batch had more than one case");

    app.stop().await;
}
