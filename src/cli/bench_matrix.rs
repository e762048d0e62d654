//! `tilstede bench matrix`: a bare matrix-sdk send → receive round trip beside
//! the bot's enqueue → decrypted-at-the-reader time, against a private Synapse
//! on loopback (rate limits lifted), in the same run.

use anyhow::{Context, Result};
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::ruma::events::room::message::{MessageType, OriginalSyncRoomMessageEvent, RoomMessageEventContent};
use matrix_sdk::{Client, Room};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tilstede::matrix::commands::Command;
use tilstede::matrix::synapse::{Limits, Synapse};
use tilstede::matrix::{Bot, CommandContext, CommandHandler, MatrixConfig, Reply, SchoolRoom, case_card, school_room};
use tokio::sync::mpsc;

/// A bot that is not asked anything.
pub(super) struct NoCommands;

impl CommandHandler for NoCommands {
    fn handle<'a>(&'a self, _: &'a CommandContext, _: Command) -> futures::future::BoxFuture<'a, Reply> {
        Box::pin(async { Reply::text("ikke i bruk") })
    }
}

async fn client(server: &Synapse, dir: &std::path::Path, user: &str, password: &str) -> Result<Client> {
    let client = Client::builder()
        .homeserver_url(server.url())
        .sqlite_store(dir, None)
        .request_config(RequestConfig::new().retry_limit(2).timeout(Duration::from_secs(60)))
        .build()
        .await?;
    client.matrix_auth().login_username(user, password).await?;
    client.sync_once(SyncSettings::default()).await?;
    Ok(client)
}

/// A reader that reports every decrypted message body with its arrival time.
pub(super) fn read_into(client: &Client) -> (mpsc::UnboundedReceiver<(String, Instant)>, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::unbounded_channel();
    client.add_event_handler(move |ev: OriginalSyncRoomMessageEvent, _room: Room| {
        let tx = tx.clone();
        async move {
            let at = Instant::now();
            let body = match &ev.content.msgtype {
                MessageType::Notice(n) => n.body.clone(),
                MessageType::Text(t) => t.body.clone(),
                _ => return,
            };
            let _ = tx.send((body, at));
        }
    });
    let c = client.clone();
    let task = tokio::spawn(async move {
        loop {
            if c.sync_once(SyncSettings::default().timeout(Duration::from_secs(30)))
                .await
                .is_err()
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    });
    (rx, task)
}

async fn wait_for(rx: &mut mpsc::UnboundedReceiver<(String, Instant)>, body: &str) -> Result<Instant> {
    loop {
        let (got, at) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
            .await
            .context("the reader saw nothing for 60 s")?
            .context("reader stopped")?;
        if got == body {
            return Ok(at);
        }
    }
}

pub(super) fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut ms: Vec<f64>) -> f64 {
    ms.sort_by(f64::total_cmp);
    let p50 = percentile(&ms, 0.5);
    println!(
        "{name}: n={} p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
        ms.len(),
        p50,
        percentile(&ms, 0.99),
        ms[ms.len() - 1]
    );
    p50
}

/// Runs the benchmark with `messages` round trips of each kind.
pub async fn run(messages: usize) -> Result<ExitCode> {
    let python = Synapse::python()?;
    let t = Instant::now();
    let server = tokio::task::spawn_blocking(move || Synapse::start(&python, Limits::Lifted)).await??;
    println!(
        "Synapse started in {:.1} s at {}",
        t.elapsed().as_secs_f64(),
        server.url()
    );
    let dir = tempfile::tempdir()?;
    let reader_id = server.register("leser", "pw-leser", false).await?;
    let sender_id = server.register("avsender", "pw-avsender", false).await?;
    let bot_id = server.register("tilstede", "pw-tilstede", false).await?;
    let reader = client(&server, &dir.path().join("reader"), &reader_id, "pw-leser").await?;
    let sender = client(&server, &dir.path().join("sender"), &sender_id, "pw-avsender").await?;

    // Bare matrix-sdk: an encrypted room between two plain clients.
    let mut request = matrix_sdk::ruma::api::client::room::create_room::v3::Request::new();
    request.invite = vec![reader.user_id().context("reader id")?.to_owned()];
    request.initial_state = vec![
        matrix_sdk::ruma::events::InitialStateEvent::with_empty_state_key(
            matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent::with_recommended_defaults(),
        )
        .to_raw_any(),
    ];
    let bare_room = sender.create_room(request).await?;
    let (mut rx, reader_task) = read_into(&reader);
    reader.join_room_by_id(bare_room.room_id()).await?;
    sender.sync_once(SyncSettings::default()).await?;
    let mut bare = Vec::with_capacity(messages);
    // One warm-up message shares the room key, as the bot's first card does.
    for i in 0..=messages {
        let body = format!("bare {i}");
        let t0 = Instant::now();
        bare_room.send(RoomMessageEventContent::notice_plain(&body)).await?;
        let at = wait_for(&mut rx, &body).await?;
        if i > 0 {
            bare.push(at.duration_since(t0).as_secs_f64() * 1e3);
        }
    }

    // The bot: durable outbox in an SQLite store, delivery loop, sync loop.
    let store = tilstede::store::Store::open(dir.path().join("store.db").to_str().context("path")?).await?;
    let config = MatrixConfig {
        homeserver: server.url(),
        user: bot_id,
        password_env: String::new(),
        store_dir: dir.path().join("bot"),
        admins: vec![],
        allow_unencrypted: false,
        allowed_servers: Vec::new(),
        schools: vec![SchoolRoom {
            school: "bench".into(),
            name: "Ressursteam benk".into(),
            members: vec![reader_id.clone()],
        }],
    };
    let bot = Bot::start(config, "pw-tilstede", store.clone(), Arc::new(NoCommands)).await?;
    bot.ensure_rooms().await?;
    let key = school_room("bench");
    let room_id = store.matrix_room(&key).await?.context("bench room")?.room_id;
    reader
        .join_room_by_id(&matrix_sdk::ruma::OwnedRoomId::try_from(room_id.as_str())?)
        .await?;
    let tasks = bot.spawn();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut via_bot = Vec::with_capacity(messages);
    for i in 0..=messages {
        let body = format!("Sak B-{i} · A.B. 7A · fase 2");
        let t0 = Instant::now();
        bot.enqueue(&case_card(&key, &format!("B-{i}"), &body, &body, &[]))
            .await?;
        let at = wait_for(&mut rx, &body).await?;
        if i > 0 {
            via_bot.push(at.duration_since(t0).as_secs_f64() * 1e3);
        }
    }
    drop(tasks);
    reader_task.abort();
    let bare_p50 = report("bare matrix-sdk send → decrypted at reader", bare);
    let bot_p50 = report("bot enqueue → case card decrypted at reader", via_bot);
    println!("ratio p50 bot/bare: {:.2}", bot_p50 / bare_p50);
    Ok(ExitCode::SUCCESS)
}
