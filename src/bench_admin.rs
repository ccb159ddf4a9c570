//! `mole bench-admin`: the clinic's past-cases page with many cases. Seeds a database (that of a
//! running `mole serve`) up to `--cases` analysed cases, a fifth of them reviewed, signs in as a
//! staff member it makes, then loads `/admin/cases` with the filters and sorts the clinic uses,
//! round after round, and reports each page's latency (p50, p95, max) as a person's browser sees
//! it: the whole HTML, summary strip and page count included. Also times a full CSV export.

use std::time::{Duration, Instant};

use crate::client::percentile;
use anyhow::{Context, bail};
use mole_storage::{Role, Store, StoreOptions};

/// Settings of `mole bench-admin`.
#[derive(Debug, clap::Args)]
pub struct BenchAdminArgs {
    /// Base URL of the running `mole serve` whose database `--database-url` is.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Its database: a scratch one (cases are added to it).
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: String,
    /// Cases the database should hold (seeded up to this many).
    #[arg(long, default_value_t = 100_000)]
    pub cases: i64,
    /// Rounds of the page mix (after one warm-up round).
    #[arg(long, default_value_t = 20)]
    pub rounds: usize,
}

fn set_cookie(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with("mole_staff="))
        .and_then(|v| v.split(';').next())
        .map(str::to_owned)
}

fn csrf_of(html: &str) -> Option<String> {
    let key = "name=\"csrf\" value=\"";
    let at = html.find(key)? + key.len();
    Some(html[at..at + html[at..].find('"')?].to_owned())
}

/// Runs `mole bench-admin`.
pub fn run(args: BenchAdminArgs) -> anyhow::Result<()> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(args))
}

async fn bench(args: BenchAdminArgs) -> anyhow::Result<()> {
    let store = Store::connect(&args.database_url, &StoreOptions::default())
        .await
        .context("connecting to PostgreSQL")?;
    store.migrate().await?;
    let have = store.count_all_cases().await?;
    if have < args.cases {
        let started = Instant::now();
        let n = args.cases - have;
        eprintln!("seeding {n} cases…");
        store.seed_synthetic_cases(n).await?;
        eprintln!("seeded in {:.1} s", started.elapsed().as_secs_f64());
    }
    let password = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let hash = mole_web::auth::hash_password(&password)?;
    let account = match store.create_account("bench", Role::Admin, &hash).await? {
        Some(a) => a,
        None => store
            .set_password("bench", &hash)
            .await?
            .context("the bench account")?,
    };
    store.seed_synthetic_reviews(account.id).await?;
    store.vacuum_analyze().await?;
    let total = store.count_all_cases().await?;
    let reviewed = store
        .clinic_summary(chrono::Utc::now())
        .await
        .map(|s| s.reviewed)?;
    store.close().await;

    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()?;
    let base = args.url.trim_end_matches('/');
    let page = client.get(format!("{base}/admin/sign-in")).send().await?;
    let cookie = set_cookie(&page).context("no session cookie from the sign-in page")?;
    let csrf = csrf_of(&page.text().await?).context("no form token on the sign-in page")?;
    let signed = client
        .post(format!("{base}/admin/sign-in"))
        .header("cookie", &cookie)
        .form(&[
            ("username", "bench"),
            ("password", password.as_str()),
            ("csrf", csrf.as_str()),
        ])
        .send()
        .await?;
    if signed.status() != 303 {
        bail!("sign-in failed: {}", signed.status());
    }
    let cookie = set_cookie(&signed).context("no session after sign-in")?;

    let today = chrono::Utc::now().date_naive();
    let month_ago = today - chrono::Duration::days(30);
    let queries: Vec<(&str, String)> = vec![
        ("newest first (the default)", String::new()),
        ("waiting for review", "status=done&reviewed=no".to_owned()),
        ("see a doctor", "verdict=see_a_doctor".to_owned()),
        (
            "melanoma by P(malignant)",
            "diagnosis=mel&sort=p_malignant&dir=desc".to_owned(),
        ),
        (
            "one model, last 30 days",
            format!("model=mole-v1%401.0.0&from={month_ago}&to={today}"),
        ),
        (
            "reviewed, by diagnosis",
            "reviewed=yes&sort=diagnosis".to_owned(),
        ),
        ("failed", "status=failed".to_owned()),
        ("page 1000 (offset 49,950)", "page=1000".to_owned()),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); queries.len()];
    for round in 0..=args.rounds {
        for (i, (_, q)) in queries.iter().enumerate() {
            let started = Instant::now();
            let r = client
                .get(format!("{base}/admin/cases?{q}"))
                .header("cookie", &cookie)
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            let ms = started.elapsed().as_secs_f64() * 1000.0;
            if status != 200 || body.is_empty() {
                bail!("/admin/cases?{q}: {status}");
            }
            if round > 0 {
                times[i].push(ms);
            }
        }
    }
    println!(
        "{total} cases ({reviewed} reviewed); {} rounds of {} pages after a warm-up round.",
        args.rounds,
        queries.len()
    );
    println!();
    println!("| /admin/cases | p50 ms | p95 ms | max ms |");
    println!("|---|---|---|---|");
    let mut all = Vec::new();
    for ((name, _), t) in queries.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        all.extend_from_slice(t);
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} |",
            percentile(t, 50.0),
            percentile(t, 95.0),
            t.last().copied().unwrap_or(f64::NAN)
        );
    }
    all.sort_by(f64::total_cmp);
    println!(
        "| **every page above** | **{:.1}** | **{:.1}** | **{:.1}** |",
        percentile(&all, 50.0),
        percentile(&all, 95.0),
        all.last().copied().unwrap_or(f64::NAN)
    );

    // The whole list as CSV, streamed.
    let started = Instant::now();
    let mut r = client
        .get(format!("{base}/admin/cases.csv"))
        .header("cookie", &cookie)
        .send()
        .await?;
    if r.status() != 200 {
        bail!("/admin/cases.csv: {}", r.status());
    }
    let mut bytes = 0usize;
    let mut lines = 0usize;
    let mut first_byte: Option<Duration> = None;
    while let Some(chunk) = r.chunk().await? {
        first_byte.get_or_insert_with(|| started.elapsed());
        bytes += chunk.len();
        lines += chunk.iter().filter(|b| **b == b'\n').count();
    }
    println!();
    println!(
        "CSV export of every live case: {} rows, {:.1} MB in {:.1} s (first byte after {:.0} ms).",
        lines.saturating_sub(1),
        bytes as f64 / 1e6,
        started.elapsed().as_secs_f64(),
        first_byte.unwrap_or_default().as_secs_f64() * 1000.0
    );
    Ok(())
}
