//! `tilstede bench matrix-load`: many prompts over many ressursteam rooms at
//! once, against a Synapse with its stock rate limits — either lifted for the
//! bot with the admin API's `override_ratelimit` (what an operator does for a
//! bot), or left as shipped (where the outbox coalesces the backlog).

use super::bench_matrix::{NoCommands, percentile, read_into};
use anyhow::{Context, Result, bail};
use clap::ValueEnum;
use matrix_sdk::Client;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tilstede::matrix::synapse::{Limits, Synapse};
use tilstede::matrix::{Bot, MatrixConfig, SchoolRoom, case_card, case_thread, school_room};

/// How the bot is rate limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BotLimits {
    /// Stock limits, lifted for the bot with `override_ratelimit`.
    Override,
    /// Stock limits for the bot too.
    Stock,
}

async fn admin_token(server: &Synapse, user: &str, password: &str) -> Result<String> {
    let answer: serde_json::Value = reqwest::Client::new()
        .post(format!("{}/_matrix/client/v3/login", server.url()))
        .json(&serde_json::json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": user },
            "password": password,
        }))
        .send()
        .await?
        .json()
        .await?;
    answer["access_token"]
        .as_str()
        .map(str::to_string)
        .with_context(|| format!("admin login: {answer}"))
}

/// Lifts (or with `lift = false` restores) the rate limits of `user`.
async fn override_limits(server: &Synapse, token: &str, user: &str, lift: bool) -> Result<()> {
    let url = format!("{}/_synapse/admin/v1/users/{user}/override_ratelimit", server.url());
    let http = reqwest::Client::new();
    let request = if lift {
        http.post(&url)
            .json(&serde_json::json!({ "messages_per_second": 0, "burst_count": 0 }))
    } else {
        http.delete(&url)
    };
    let status = request.bearer_auth(token).send().await?.status();
    if !status.is_success() {
        bail!("override_ratelimit for {user}: {status}");
    }
    Ok(())
}

fn tokens(body: &str) -> impl Iterator<Item = usize> + '_ {
    body.split("[benk:")
        .skip(1)
        .filter_map(|rest| rest.split(']').next()?.parse().ok())
}

/// Runs the benchmark: `prompts` thread messages over `rooms` rooms, with a
/// case card per five prompts.
pub async fn run(prompts: usize, rooms: usize, limits: BotLimits) -> Result<ExitCode> {
    let python = Synapse::python()?;
    let server = tokio::task::spawn_blocking(move || Synapse::start(&python, Limits::Stock)).await??;
    let dir = tempfile::tempdir()?;
    server.register("admin", "pw-admin", true).await?;
    let token = admin_token(&server, "admin", "pw-admin").await?;
    let reader_id = server.register("leser", "pw-leser", false).await?;
    let bot_id = server.register("tilstede", "pw-tilstede", false).await?;
    // Setting up 50 rooms is not what is measured: lift limits meanwhile.
    override_limits(&server, &token, &reader_id, true).await?;
    override_limits(&server, &token, &bot_id, true).await?;

    let reader = Client::builder()
        .homeserver_url(server.url())
        .sqlite_store(dir.path().join("reader"), None)
        .request_config(RequestConfig::new().retry_limit(2).timeout(Duration::from_secs(60)))
        .build()
        .await?;
    reader.matrix_auth().login_username(&reader_id, "pw-leser").await?;
    reader.sync_once(SyncSettings::default()).await?;

    let store = tilstede::store::Store::open(dir.path().join("store.db").to_str().context("path")?).await?;
    let schools: Vec<String> = (0..rooms).map(|i| format!("sk-{i:02}")).collect();
    let config = MatrixConfig {
        homeserver: server.url(),
        user: bot_id.clone(),
        password_env: String::new(),
        store_dir: dir.path().join("bot"),
        admins: vec![],
        allow_unencrypted: false,
        allowed_servers: Vec::new(),
        schools: schools
            .iter()
            .map(|s| SchoolRoom {
                school: s.clone(),
                name: format!("Ressursteam {s}"),
                members: vec![reader_id.clone()],
            })
            .collect(),
    };
    let bot = Bot::start(config, "pw-tilstede", store.clone(), Arc::new(NoCommands)).await?;
    let t = Instant::now();
    bot.ensure_rooms().await?;
    for s in &schools {
        let id = store.matrix_room(&school_room(s)).await?.context("room")?.room_id;
        reader
            .join_room_by_id(&matrix_sdk::ruma::OwnedRoomId::try_from(id.as_str())?)
            .await?;
    }
    println!(
        "{rooms} encrypted rooms made and joined in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    if limits == BotLimits::Stock {
        override_limits(&server, &token, &bot_id, false).await?;
    }

    let (mut rx, reader_task) = read_into(&reader);
    let tasks = bot.spawn();
    tokio::time::sleep(Duration::from_secs(1)).await;
    while rx.try_recv().is_ok() {}

    // Enqueue everything at once, as a busy morning's case sync would.
    let per_room = prompts.div_ceil(rooms);
    let mut enqueued_at: HashMap<usize, Instant> = HashMap::new();
    let mut n = 0;
    let started = Instant::now();
    'rooms: for s in &schools {
        let key = school_room(s);
        for j in 0..per_room {
            if n >= prompts {
                break 'rooms;
            }
            let case = format!("{s}-{}", j / 5);
            if j % 5 == 0 {
                let body = format!("Sak {case} · A.B. 7A · fase 2");
                bot.enqueue(&case_card(&key, &case, &body, &body, &[])).await?;
            }
            let body = format!("Ring foresatte i sak {case}. [benk:{n}]");
            enqueued_at.insert(n, Instant::now());
            bot.enqueue(&case_thread(&key, &case, &body, &body, &[])).await?;
            n += 1;
        }
    }
    let mut latency = Vec::with_capacity(prompts);
    let mut messages = 0usize;
    let limit = Duration::from_secs(3600);
    while !enqueued_at.is_empty() {
        let (body, at) = tokio::time::timeout(limit, rx.recv())
            .await
            .context("the reader saw nothing for an hour")?
            .context("reader stopped")?;
        messages += 1;
        for token in tokens(&body) {
            if let Some(t0) = enqueued_at.remove(&token) {
                latency.push(at.duration_since(t0).as_secs_f64());
            }
        }
    }
    let total = started.elapsed().as_secs_f64();
    drop(tasks);
    reader_task.abort();
    latency.sort_by(f64::total_cmp);
    println!(
        "limits: {limits:?}; {prompts} prompts (+ {} cards) in {rooms} rooms",
        prompts.div_ceil(5)
    );
    println!(
        "all delivered and decrypted in {total:.1} s ({:.1} prompts/s) as {messages} Matrix messages",
        prompts as f64 / total
    );
    println!(
        "enqueue → decrypted at the reader: p50 {:.2} s, p99 {:.2} s, max {:.2} s",
        percentile(&latency, 0.5),
        percentile(&latency, 0.99),
        latency.last().copied().unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}
