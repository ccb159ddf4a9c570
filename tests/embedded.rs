//! The zero-setup mode through the `mole` binary itself: started with no environment at all in an
//! empty directory, it keeps its cases in `./mole-data`, analyses an upload and streams the
//! result; killed with SIGKILL while cases are in flight and started again, it completes them.
//!
//! The binary is `MOLE_BIN` when set (`scripts/test` sets the release build), else the one cargo
//! built for this test run.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;
use uuid::Uuid;

fn mole_bin() -> PathBuf {
    std::env::var_os("MOLE_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_mole")))
}

fn fixture(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/ham10000")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const PHOTOS: [&str; 8] = [
    "ISIC_0025314.jpg",
    "ISIC_0025707.jpg",
    "ISIC_0026275.jpg",
    "ISIC_0027026.jpg",
    "ISIC_0027204.jpg",
    "ISIC_0027420.jpg",
    "ISIC_0027665.jpg",
    "ISIC_0027793.jpg",
];

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `mole`, killed when dropped.
struct Mole {
    child: Child,
    base: String,
    announced: String,
}

impl Drop for Mole {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `mole` in `dir` with an empty environment (only `--port 0`, so that parallel runs do
/// not collide) and waits for the line that says where to open it.
fn start(dir: &Path) -> Mole {
    let mut child = Command::new(mole_bin())
        .args(["--port", "0"])
        .current_dir(dir)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start mole");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // Reads on to the end, so that the process never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with("mole is running") {
                let _ = tx.send(line);
            }
        }
    });
    let announced = rx
        .recv_timeout(Duration::from_secs(180))
        .expect("mole says where to open it within 3 minutes");
    let url = announced
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .expect("a URL")
        .trim_end_matches('/')
        .to_owned();
    Mole {
        child,
        base: url,
        announced,
    }
}

async fn upload(client: &reqwest::Client, mole: &Mole, name: &str) -> Uuid {
    let part = reqwest::multipart::Part::bytes(fixture(name)).file_name(name.to_owned());
    let response = client
        .post(format!("{}/cases", mole.base))
        .header("accept", "application/json")
        .multipart(reqwest::multipart::Form::new().part("photo", part))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201, "upload of {name}");
    let body: Value = response.json().await.unwrap();
    body["id"].as_str().unwrap().parse().unwrap()
}

/// Follows the case's event stream until it is final; returns the last case JSON.
async fn follow(client: &reqwest::Client, mole: &Mole, id: Uuid) -> Value {
    let response = client
        .get(format!("{}/cases/{id}/events", mole.base))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut bytes = response.bytes_stream();
    let mut buffer = String::new();
    let read = async {
        while let Some(chunk) = bytes.next().await {
            buffer.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let Some(data) = block.lines().find_map(|l| l.strip_prefix("data:")) else {
                    continue;
                };
                let view: Value = serde_json::from_str(data.trim_start()).unwrap();
                if matches!(
                    view["status"].as_str(),
                    Some("done" | "failed" | "refused" | "deleted")
                ) {
                    return view;
                }
            }
        }
        panic!("the event stream of {id} ended before the case was final");
    };
    tokio::time::timeout(Duration::from_secs(120), read)
        .await
        .unwrap_or_else(|_| panic!("case {id} was not final within 2 minutes"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mole_with_no_environment_runs_embedded_and_finishes_cases_after_a_sigkill() {
    let dir = TempDir(std::env::temp_dir().join(format!("mole-embedded-{}", Uuid::new_v4())));
    std::fs::create_dir_all(&dir.0).unwrap();
    let client = reqwest::Client::new();

    let mole = start(&dir.0);
    let data = dir.0.join("mole-data").join("mole.db");
    assert!(
        mole.announced.contains("mole-data"),
        "it says where the data lives: {}",
        mole.announced
    );
    assert!(data.is_file(), "the SQLite file is made in ./mole-data");
    // One case from upload to its result on the event stream.
    let first = upload(&client, &mole, PHOTOS[0]).await;
    let done = follow(&client, &mole, first).await;
    assert_eq!(done["status"], "done", "{done}");
    assert!(done["result"]["verdict"].is_string(), "{done}");
    // Healthy once its worker has reported its first self-check (a forward pass).
    let mut health = Value::Null;
    for _ in 0..100 {
        health = client
            .get(format!("{}/healthz", mole.base))
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

    // Killed while cases are in flight: the last uploads cannot all have been analysed.
    let mut in_flight = Vec::new();
    for name in &PHOTOS[1..] {
        in_flight.push(upload(&client, &mole, name).await);
    }
    let mut killed = mole;
    killed.child.kill().unwrap(); // SIGKILL
    killed.child.wait().unwrap();
    drop(killed);

    let store = mole_storage::Store::open_sqlite(&data, &mole_storage::StoreOptions::default())
        .await
        .unwrap();
    let mut unfinished = Vec::new();
    for id in &in_flight {
        let case = store
            .case(*id)
            .await
            .unwrap()
            .expect("every upload was stored");
        if !case.status.is_terminal() {
            unfinished.push(*id);
        }
    }
    store.close().await;
    assert!(
        !unfinished.is_empty(),
        "the kill came after every case was done: nothing was in flight"
    );

    // Started again on the same directory: every case completes, the first one is still there.
    let mole = start(&dir.0);
    for id in &in_flight {
        let view = follow(&client, &mole, *id).await;
        assert_eq!(view["status"], "done", "{view}");
    }
    let first_again: Value = client
        .get(format!("{}/api/cases/{first}", mole.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(first_again["status"], "done");
    // What was in flight was queued again at the start, on the record.
    let store = mole_storage::Store::open_sqlite(&data, &mole_storage::StoreOptions::default())
        .await
        .unwrap();
    for id in &unfinished {
        let events = store.events(*id).await.unwrap();
        assert!(
            events
                .iter()
                .any(|e| e.kind == mole_storage::EventKind::Requeued && e.actor == "system:start"),
            "{id}: {events:?}"
        );
    }
    store.close().await;

    // A second process on the same directory is refused while the first serves it.
    let second = Command::new(mole_bin())
        .args(["--port", "0"])
        .current_dir(&dir.0)
        .env_clear()
        .output()
        .unwrap();
    assert!(!second.status.success());
    assert!(
        String::from_utf8_lossy(&second.stdout).contains("another mole process")
            || String::from_utf8_lossy(&second.stderr).contains("another mole process"),
        "{second:?}"
    );

    // SIGTERM: a clean stop.
    let mut mole = mole;
    let term = Command::new("kill")
        .args(["-TERM", &mole.child.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = mole.child.wait().unwrap();
    assert!(status.success(), "{status}");

    // The clinic moves as a case bundle: exported from ./mole-data, imported into another store,
    // every case and audit event with it.
    let bundle = dir.0.join("clinic.jsonl");
    let export = Command::new(mole_bin())
        .args(["export", "--out"])
        .arg(&bundle)
        .current_dir(&dir.0)
        .env_clear()
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&export.stderr);
    assert!(export.status.success(), "{said}");
    assert!(said.contains("exported 8 cases"), "{said}");
    let import = Command::new(mole_bin())
        .arg("import")
        .arg(&bundle)
        .args(["--data-dir", "moved"])
        .current_dir(&dir.0)
        .env_clear()
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&import.stderr);
    assert!(import.status.success(), "{said}");
    assert!(said.contains("imported 8 cases"), "{said}");
    let (from, to) = (
        mole_storage::Store::open_sqlite(&data, &mole_storage::StoreOptions::default())
            .await
            .unwrap(),
        mole_storage::Store::open_sqlite(
            &dir.0.join("moved").join("mole.db"),
            &mole_storage::StoreOptions::default(),
        )
        .await
        .unwrap(),
    );
    for id in std::iter::once(&first).chain(&in_flight) {
        let (a, b) = (
            from.events(*id).await.unwrap(),
            to.events(*id).await.unwrap(),
        );
        assert_eq!(a.len(), b.len(), "{id}");
        let (a, b) = (
            from.case_state(*id).await.unwrap(),
            to.case_state(*id).await.unwrap(),
        );
        assert_eq!(
            a.and_then(|s| s.prediction).map(|p| p.result),
            b.and_then(|s| s.prediction).map(|p| p.result)
        );
    }
}
