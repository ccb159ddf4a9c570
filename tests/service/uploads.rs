//! The upload path: validation by content, idempotent re-submission, deletion by the uploader,
//! views in the audit trail, pages that work without JavaScript, back-pressure, health and
//! metrics.

use mole_storage::EventKind;

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_file_named_like_a_photo_is_refused_with_a_clear_message() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let response = upload(
        &client,
        &app,
        "mole.jpg",
        b"not a photo at all".to_vec(),
        None,
        false,
    )
    .await;
    assert_eq!(response.status(), 415);
    let html = response.text().await.unwrap();
    assert!(html.contains("not an image"), "{html}");
    assert!(html.contains("<form"), "the form is shown again");

    let response = upload(
        &client,
        &app,
        "mole.jpg",
        b"not a photo".to_vec(),
        None,
        true,
    )
    .await;
    assert_eq!(response.status(), 415);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "not_an_image");
    assert_eq!(
        env.store
            .status_counts()
            .await
            .unwrap()
            .counts
            .iter()
            .map(|c| c.1)
            .sum::<i64>(),
        0
    );
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_over_the_size_limit_is_refused_with_413() {
    let env = TestEnv::new().await;
    let mut args = env.serve_args();
    args.upload_limit = 20 * 1024;
    let app = App::spawn_with(args).await;
    let big = vec![0xFFu8; 64 * 1024];
    let response = upload(&http(), &app, "big.jpg", big, None, true).await;
    assert_eq!(response.status(), 413);
    let body: serde_json::Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "file_too_large");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sending_the_same_photo_twice_gives_the_same_case() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    // The form page hands out the uploader cookie before the first upload.
    let form = client.get(app.url("/")).send().await.unwrap();
    let cookie = cookie_of(&form).expect("the form sets the uploader cookie");
    let bytes = read(&fixture_images()[0]);
    let first = upload(&client, &app, "a.jpg", bytes.clone(), Some(&cookie), false).await;
    let second = upload(&client, &app, "a.jpg", bytes.clone(), Some(&cookie), false).await;
    assert_eq!(first.status(), 303);
    assert_eq!(second.status(), 303);
    assert_eq!(first.headers()["location"], second.headers()["location"]);
    // Someone else sending the same photo gets their own case.
    let other = upload(&client, &app, "a.jpg", bytes, None, false).await;
    assert_ne!(other.headers()["location"], first.headers()["location"]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_uploader_can_delete_a_case_and_its_photo_and_the_trail_says_who_did_what() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let form = client.get(app.url("/")).send().await.unwrap();
    let cookie = cookie_of(&form).unwrap();
    let response = upload(
        &client,
        &app,
        "a.jpg",
        read(&fixture_images()[0]),
        Some(&cookie),
        false,
    )
    .await;
    let id = redirected_case(&response);
    let location = format!("/cases/{id}");

    // A visitor with the link sees the page but no delete button, and cannot delete.
    let page = client
        .get(app.url(&location))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(!page.contains("id=\"delete\""));
    let refused = client
        .post(app.url(&format!("{location}/delete")))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);

    // The uploader sees the photo and the button (and the page refreshes itself without JS).
    let page = client
        .get(app.url(&location))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("id=\"delete\""));
    assert!(page.contains("<noscript><meta http-equiv=\"refresh\""));
    // Only the uploader sees the photo: without their cookie the link is not enough.
    let photo = client
        .get(app.url(&format!("{location}/image")))
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 403);
    let photo = client
        .get(app.url(&format!("{location}/image")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(photo.status(), 200);
    // A JPEG upload is kept as its own bytes without metadata.
    assert_eq!(photo.headers()["content-type"], "image/jpeg");

    let deleted = client
        .post(app.url(&format!("{location}/delete")))
        .header("cookie", &cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 303);
    assert_eq!(
        client
            .get(app.url(&location))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert_eq!(
        client
            .get(app.url(&format!("{location}/image")))
            .send()
            .await
            .unwrap()
            .status(),
        410
    );
    assert!(
        env.store.image(id).await.unwrap().is_none(),
        "the photo is gone"
    );
    let json = client
        .get(app.url(&format!("/api/cases/{id}")))
        .send()
        .await
        .unwrap();
    assert_eq!(json.status(), 410);
    let json: serde_json::Value = json.json().await.unwrap();
    assert_eq!(json["error"]["code"], "deleted");

    let events = env.store.events(id).await.unwrap();
    let views: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == EventKind::Viewed)
        .map(|e| e.actor.as_str())
        .collect();
    assert_eq!(views.len(), 2);
    assert_eq!(views[0], "visitor");
    assert!(views[1].starts_with("uploader:"));
    let deletion = events
        .iter()
        .find(|e| e.kind == EventKind::Deleted)
        .unwrap();
    assert_eq!(deletion.actor, views[1]);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_metrics_answer_and_health_reports_workers() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let health: serde_json::Value = client
        .get(app.url("/healthz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["database"]["ok"], true);
    assert_eq!(health["redis"]["ok"], true);
    assert_eq!(health["status"], "degraded", "no worker yet: {health}");

    let worker = InProcessWorker::spawn(env.worker_args());
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let health: serde_json::Value = client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if health["status"] == "ok" {
            let report = &health["workers"]["reports"][0];
            assert_eq!(report["forward_pass_ok"], true);
            assert!(report["forward_pass_ms"].as_f64().unwrap() > 0.0);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no worker reported: {health}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }

    let metrics = client
        .get(app.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("mole_cases{status=\"queued\"}"),
        "{metrics}"
    );
    assert!(metrics.contains("mole_queue_depth"), "{metrics}");
    worker.stop().await.unwrap();
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_files_get_a_clear_error_each_and_the_server_keeps_serving() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    let photo = read(&fixture_images()[1]);

    // A decompression bomb: a real HAM10000 JPEG whose frame header claims 60000×60000 pixels.
    let mut bomb = photo.clone();
    let sof = bomb
        .windows(2)
        .position(|w| w == [0xFF, 0xC0] || w == [0xFF, 0xC2])
        .expect("the fixture has a frame header");
    bomb[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    let mut heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    heic.extend_from_slice(&[0; 64]);
    let cases: Vec<(&str, Vec<u8>, u16, &[&str])> = vec![
        (
            "truncated.jpg",
            photo[..photo.len() / 2].to_vec(),
            422,
            &["truncated_image", "corrupt_image"],
        ),
        ("bomb.jpg", bomb, 422, &["image_too_large"]),
        ("photo.heic", heic, 415, &["unsupported_format"]),
        (
            "notes.pdf",
            b"%PDF-1.7\n1 0 obj << >> endobj\n".to_vec(),
            415,
            &["not_an_image"],
        ),
        (
            "tiny.jpg",
            photo[..2].to_vec(),
            422,
            &["truncated_image", "not_an_image"],
        ),
    ];
    for (name, bytes, status, codes) in cases {
        let response = upload(&client, &app, name, bytes, None, true).await;
        let got = response.status().as_u16();
        let body: serde_json::Value = response.json().await.unwrap();
        let code = body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            codes.contains(&code.as_str()),
            "{name}: code {code:?}, expected one of {codes:?}: {body}"
        );
        assert!(
            (400..500).contains(&got) && (got == status || code == "not_an_image"),
            "{name}: status {got}, expected {status}: {body}"
        );
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.len() > 10,
            "{name}: a message a person can read: {body}"
        );
    }
    // Nothing was stored, and the same server still takes a good photo.
    let stored: i64 = env
        .store
        .status_counts()
        .await
        .unwrap()
        .counts
        .iter()
        .map(|c| c.1)
        .sum();
    assert_eq!(stored, 0, "refused files leave no case behind");
    let id = upload_case(&client, &app, "good.jpg", photo).await;
    assert!(env.store.case(id).await.unwrap().is_some());
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_senders_hold_no_decode_slot_and_are_cut_off_by_the_request_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let env = TestEnv::new().await;
    let mut args = env.serve_args();
    // One decode slot only, and a short request timeout.
    args.max_uploads_in_flight = 1;
    args.request_timeout_secs = 3;
    let app = App::spawn_with(args).await;
    let addr = app.base.trim_start_matches("http://").to_owned();

    // Eight clients start an upload and stall in the middle of the body.
    let mut stalled = Vec::new();
    for _ in 0..8 {
        let mut tcp = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let head = format!(
            "POST /cases HTTP/1.1\r\nHost: {addr}\r\n\
             Content-Type: multipart/form-data; boundary=xyz\r\nContent-Length: 1000000\r\n\r\n\
             --xyz\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"a.jpg\"\r\n\
             Content-Type: image/jpeg\r\n\r\n"
        );
        tcp.write_all(head.as_bytes()).await.unwrap();
        tcp.write_all(&[0xFF, 0xD8, 0xFF, 0xE0]).await.unwrap();
        stalled.push(tcp);
    }
    // Meanwhile an ordinary upload is taken: nobody holds the decode slot while sending.
    let client = http();
    let response = upload(
        &client,
        &app,
        "lesion.jpg",
        read(&fixture_images()[4]),
        None,
        true,
    )
    .await;
    assert_eq!(
        response.status(),
        201,
        "the stalled bodies blocked an upload"
    );

    // The stalled ones are answered 408 once the request timeout has passed.
    for mut tcp in stalled {
        let mut answer = vec![0u8; 64];
        let n = tokio::time::timeout(PATIENCE, tcp.read(&mut answer))
            .await
            .expect("an answer within the timeout")
            .unwrap();
        let line = String::from_utf8_lossy(&answer[..n]);
        assert!(line.starts_with("HTTP/1.1 408"), "{line}");
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_jpeg_is_stored_without_any_metadata_but_with_its_exact_pixels_and_orientation() {
    let env = TestEnv::new().await;
    let app = App::spawn(&env).await;
    let client = http();
    // A fixture photo with what a phone adds: EXIF (GPS, serial, orientation 6), XMP, a comment,
    // and a motion-photo trailer after the end of the image.
    let photo = read(&fixture_images()[5]);
    let segment = |marker: u8, payload: &[u8]| {
        let mut s = vec![0xFF, marker];
        s.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
        s.extend_from_slice(payload);
        s
    };
    let mut exif = b"Exif\0\0MM\0\x2A\0\0\0\x08".to_vec();
    // IFD0: Orientation = 6, then a GPS pointer's worth of text that must not survive.
    exif.extend_from_slice(&[0, 1, 0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, 6, 0, 0, 0, 0, 0, 0]);
    exif.extend_from_slice(b"GPSLatitude 48.8566 N GPSLongitude 2.3522 E BodySerialNumber 0042");
    let mut sent = photo[..2].to_vec();
    sent.extend(segment(0xE1, &exif));
    sent.extend(segment(
        0xE1,
        b"http://ns.adobe.com/xap/1.0/\0<x:xmpmeta>where</x:xmpmeta>",
    ));
    sent.extend(segment(0xFE, b"taken at home"));
    sent.extend_from_slice(&photo[2..]);
    sent.extend_from_slice(b"MotionPhoto_Data");

    let cookie = browser_cookie(&app).await;
    let response = upload(
        &client,
        &app,
        "IMG_0001.jpg",
        sent.clone(),
        Some(&cookie),
        false,
    )
    .await;
    let id = redirected_case(&response);
    let stored = client
        .get(app.url(&format!("/cases/{id}/image")))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.headers()["content-type"], "image/jpeg");
    let stored = stored.bytes().await.unwrap().to_vec();
    for secret in [
        &b"GPS"[..],
        b"Serial",
        b"xmpmeta",
        b"taken at home",
        b"MotionPhoto",
    ] {
        assert!(
            !stored.windows(secret.len()).any(|w| w == secret),
            "{} survived",
            String::from_utf8_lossy(secret)
        );
    }
    // The same upright pixels as the upload (the orientation is kept, alone).
    let limits = mole_inference::DecodeLimits::default();
    let (before, after) = (
        mole_inference::decode_image(&sent, &limits).unwrap(),
        mole_inference::decode_image(&stored, &limits).unwrap(),
    );
    assert_eq!(
        (after.width(), after.height()),
        (before.width(), before.height())
    );
    assert!(
        before == after,
        "the stored photo's pixels differ from the upload's"
    );
    assert_eq!(mole_inference::decode::exif_orientation(&stored), 6);
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn uploads_beyond_the_decode_slots_wait_for_one_instead_of_being_turned_away() {
    let env = TestEnv::new().await;
    let mut args = env.serve_args();
    // One decode slot for four uploads sent at once: each waits its turn (a decode here takes
    // far less than the wait, so none is turned away; without the wait, three would be).
    args.max_uploads_in_flight = 1;
    let app = App::spawn_with(args).await;
    let client = http();
    // Photos large enough that their decodes overlap (1000×750, each a little different).
    let base = image::load_from_memory(&read(&fixture_images()[0]))
        .unwrap()
        .to_rgb8();
    let big = image::imageops::resize(&base, 1000, 750, image::imageops::FilterType::Triangle);
    let photos: Vec<(String, Vec<u8>)> = (0..4u8)
        .map(|i| {
            let mut pixels = big.clone();
            pixels.put_pixel(0, 0, image::Rgb([i, i, i]));
            let mut jpeg = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
                .encode_image(&pixels)
                .unwrap();
            (format!("big{i}.jpg"), jpeg)
        })
        .collect();
    let sends = photos.into_iter().map(|(name, bytes)| {
        let (client, app) = (client.clone(), &app);
        async move {
            upload(&client, app, &name, bytes, None, true)
                .await
                .status()
        }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(
        statuses.iter().all(|s| *s == 201),
        "every upload taken in turn: {statuses:?}"
    );
    app.stop().await;
}
