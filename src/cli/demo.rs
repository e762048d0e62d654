//! `tilstede demo`: the whole product on one machine. A local Synapse, a
//! generated municipality whose school system pushes its absence week by
//! week, and the gateway with its Matrix bot; cases appear in the
//! ressursteam rooms. Prints a Matrix login for any Matrix client and writes
//! a transcript of everything the bot posted.

use anyhow::{Context, Result};
use chrono::Datelike;
use clap::Args;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tilstede::domain::AbsenceRecord;
use tilstede::matrix::synapse::{Limits, Synapse};
use tilstede::synthetic::Municipality;

/// Options of `tilstede demo`. The help is in Norwegian: this is where a
/// newcomer starts.
#[derive(Debug, Args)]
#[command(
    disable_help_flag = true,
    override_usage = "tilstede demo [VALG]",
    help_template = "{about-with-newline}\nBruk: {usage}\n\nValg:\n{options}\n"
)]
pub struct DemoArgs {
    /// Antall elever i den genererte kommunen.
    #[arg(long, default_value_t = 150)]
    pupils: usize,
    /// Antall skoler.
    #[arg(long, default_value_t = 2)]
    schools: usize,
    /// Frø for generatoren (samme frø gir samme kommune).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Mappen for lageret, oppsettet og transkriptet.
    #[arg(long, default_value = "demo-data")]
    dir: PathBuf,
    /// Avslutt når alt er levert, i stedet for å vente på Ctrl-C.
    #[arg(long)]
    exit: bool,
    /// Ikke vent på at du har logget inn før skolesystemet begynner å sende
    /// fravær (historikken kan likevel leses av den som logger inn senere).
    #[arg(long)]
    no_wait: bool,
    /// Vis denne hjelpen.
    #[arg(short, long, action = clap::ArgAction::Help)]
    #[allow(dead_code)] // clap acts on it
    help: Option<bool>,
    /// The demo keeps its store in `--dir`; the global `--store` is shadowed
    /// here (and hidden) so its help does not offer an option it ignores.
    #[arg(long, hide = true, default_value = "tilstede.db")]
    #[allow(dead_code)] // deliberately unused
    store: String,
}

/// Waits until `user` has a device with uploaded keys and has joined `rooms`
/// rooms, reminding every half minute of what is missing.
async fn wait_for_login(server: &str, token: &str, user: &str, rooms: usize) -> Result<()> {
    let http = reqwest::Client::new();
    let mut reminded = Instant::now();
    loop {
        let keys: serde_json::Value = http
            .post(format!("{server}/_matrix/client/v3/keys/query"))
            .bearer_auth(token)
            .json(&serde_json::json!({ "device_keys": { user: [] } }))
            .send()
            .await?
            .json()
            .await?;
        let devices = keys["device_keys"][user].as_object().map_or(0, |d| d.len());
        let joined: serde_json::Value = http
            .get(format!("{server}/_synapse/admin/v1/users/{user}/joined_rooms"))
            .bearer_auth(token)
            .send()
            .await?
            .json()
            .await?;
        let joined = joined["joined_rooms"].as_array().map_or(0, |r| r.len());
        if devices > 0 && joined >= rooms {
            println!(
                "   Klienten din har lastet opp krypteringsnøkler og er med i {joined} rom. Skolesystemet starter."
            );
            return Ok(());
        }
        if reminded.elapsed() >= Duration::from_secs(30) {
            println!(
                "   venter fortsatt: {devices} enhet(er) med nøkler, med i {joined} av {rooms} rom (Ctrl-C avslutter)"
            );
            reminded = Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn random_password() -> String {
    format!("demo-{:012x}", rand::random::<u64>() & 0xffff_ffff_ffff)
}

/// Runs the demo.
pub async fn run(args: DemoArgs) -> Result<ExitCode> {
    std::fs::create_dir_all(&args.dir).with_context(|| format!("kan ikke lage {}", args.dir.display()))?;
    let dir = std::fs::canonicalize(&args.dir)?;
    for old in ["tilstede.db", "tilstede.db-wal", "tilstede.db-shm"] {
        let _ = std::fs::remove_file(dir.join(old));
    }
    let _ = std::fs::remove_dir_all(dir.join("matrix"));

    println!("== Starter en lokal Matrix-tjener (Synapse) …");
    let python = Synapse::python()?;
    let server = tokio::task::spawn_blocking(move || Synapse::start(&python, Limits::Lifted)).await??;
    let bot_password = random_password();
    let demo_password = random_password();
    let bot = server.register("tilstede", &bot_password, false).await?;
    let demo = server.register("ressursteam", &demo_password, false).await?;
    // The demo's own eyes on the homeserver: whether the demo user has
    // logged in, uploaded keys and joined (never a Matrix client of its own).
    let (_, watcher) = server.register_with_token("tilsyn", &random_password(), true).await?;

    println!(
        "== Genererer en kommune med {} elever på {} skoler (ingen virkelige personer)",
        args.pupils, args.schools
    );
    let m = Municipality::generate(args.pupils, args.schools, args.seed);
    let server_name = bot.split_once(':').map(|(_, s)| s).unwrap_or("localhost").to_string();
    let roster = m.roster(Some(&format!("@{{username}}:{server_name}")));
    // The contact teachers exist on the homeserver too, so their direct
    // messages can be delivered.
    for s in &m.staff {
        server.register(&s.username, &random_password(), false).await?;
    }
    let store_path = dir.join("tilstede.db");
    {
        let store = tilstede::store::Store::open(store_path.to_str().context("sti")?).await?;
        store.upsert_roster(&roster).await?;
        store.close().await;
    }
    std::fs::write(dir.join("bot.passord"), &bot_password)?;
    // A fresh token each run: the config check refuses short ones.
    let push_token = hex::encode(rand::random::<[u8; 32]>());
    std::fs::write(dir.join("skolesystem.token"), &push_token)?;
    // The demo user leads every school, so every case is theirs to follow.
    let mut cases = tilstede::cases::config::PRESETS
        .iter()
        .find(|(n, _)| *n == "baerum")
        .map(|(_, t)| t.to_string())
        .context("baerum-oppsettet mangler")?;
    let mut matrix = format!(
        "[matrix]\nhomeserver = \"{}\"\nuser = \"{bot}\"\npassword_file = \"bot.passord\"\nstore_dir = \"matrix\"\nadmins = [\"{demo}\"]\n",
        server.url()
    );
    for s in &m.schools {
        writeln!(cases, "\n[schools.{}]\navdelingsleder = \"{demo}\"", s.id)?;
        writeln!(
            matrix,
            "\n[[matrix.schools]]\nschool = \"{}\"\nname = \"Ressursteam {}\"\nmembers = [\"{demo}\"]",
            s.id, s.name
        )?;
    }
    std::fs::write(dir.join("saker.toml"), cases)?;
    let config_text = format!(
        "# Laget av `tilstede demo`.\nstore = \"tilstede.db\"\nrules = \"baerum\"\ncases = \"saker.toml\"\n\n[sources.skolesystem]\nschools = [\"*\"]\ntoken_file = \"skolesystem.token\"\n\n{matrix}"
    );
    let config_path = dir.join("tilstede.toml");
    std::fs::write(&config_path, &config_text)?;
    let config = tilstede::config::Config::load(&config_path)?;
    let running = tilstede::service::start(config, Some("127.0.0.1:0".parse()?)).await?;
    let url = format!("http://{}", running.addr);
    println!("== tilstede kjører på {url}");
    println!();
    println!("   Logg inn med en Matrix-klient (f.eks. Element), mens demoen kjører:");
    println!("     tjener:  {}", server.url());
    println!("     bruker:  {demo}");
    println!("     passord: {demo_password}");
    println!();
    if args.no_wait {
        println!("   Skolesystemet begynner å sende nå (--no-wait). Logger du inn senere, får");
        println!("   den nye enheten nøklene og kan lese alt som er postet.");
    } else {
        let rooms = m.schools.len() + 1;
        println!(
            "== Venter på at du logger inn som {demo} og godtar invitasjonene ({rooms} rom: {} ressursteam og en direktemelding),",
            m.schools.len()
        );
        println!("   før skolesystemet begynner å sende fravær. (--no-wait hopper over ventingen.)");
        let url = server.url();
        tokio::select! {
            waited = wait_for_login(&url, &watcher, &demo, rooms) => waited?,
            _ = tilstede::service::termination() => {
                running.shutdown().await?;
                return Ok(ExitCode::SUCCESS);
            }
        }
    }

    // The school system: this school year's absence up to yesterday, pushed week by week.
    let today = tilstede::domain::dates::school_date_utc(chrono::Utc::now());
    let year = if today.month() >= 8 {
        today.year()
    } else {
        today.year() - 1
    };
    let mut records: Vec<AbsenceRecord> = m.absence(year, "skolesystem").filter(|r| r.date < today).collect();
    records.sort_by_key(|r| r.date);
    let http = reqwest::Client::new();
    let weeks = records.chunk_by(|a, b| a.date.iso_week() == b.date.iso_week());
    println!("== Skolesystemet sender fravær uke for uke …");
    for (i, week) in weeks.enumerate() {
        let body: String = week.iter().map(|r| r.to_json_line() + "\n").collect();
        let answer = http
            .post(format!("{url}/api/v1/sources/skolesystem/records"))
            .bearer_auth(&push_token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await?;
        anyhow::ensure!(answer.status().is_success(), "innsending avvist: {}", answer.status());
        tokio::time::sleep(Duration::from_millis(300)).await;
        if i % 3 == 2 {
            let open = running.state.store.cases_raw(None, false).await?.len();
            println!(
                "   uke {}: fravær sendt fra skolesystemet; åpne saker: {open}",
                week[0].date.iso_week().week()
            );
        }
    }

    println!("== Venter på at saker åpnes og at boten har postet alt …");
    let started = Instant::now();
    let mut quiet = 0;
    let mut last = (0, 0);
    while started.elapsed() < Duration::from_secs(600) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let store = &running.state.store;
        let outbox = store.outbox_counts().await?;
        let waiting = store.notifications(false, 1).await?.len();
        let open = store.cases_raw(None, false).await?.len();
        let now = (open, outbox.delivered);
        quiet = if outbox.pending == 0 && waiting == 0 && now == last && open > 0 {
            quiet + 1
        } else {
            0
        };
        last = now;
        if quiet >= 6 {
            break;
        }
    }
    let store = &running.state.store;
    let cases = store.cases_raw(None, false).await?;
    let open = match cases.len() {
        1 => "1 sak er åpen".to_string(),
        n => format!("{n} saker er åpne"),
    };
    println!("   {open}; boten har postet {} meldinger.", last.1);
    let transcript = dir.join("transkript.md");
    let mut text = String::from("# Det boten postet (demo)\n");
    let mut room = String::new();
    for e in store.outbox_log().await? {
        if e.post.room_key != room {
            room = e.post.room_key.clone();
            writeln!(text, "\n## Rom {room}\n")?;
        }
        let what = match e.post.kind {
            tilstede::store::PostKind::Edit => "endret saksinfo",
            tilstede::store::PostKind::Reaction | tilstede::store::PostKind::Redaction => continue,
            tilstede::store::PostKind::Notice if e.post.anchor.is_some() => "saksinfo",
            tilstede::store::PostKind::Notice if e.post.thread.is_some() => "i tråden",
            tilstede::store::PostKind::Notice => "melding",
            tilstede::store::PostKind::Image => "bilde i tråden",
            tilstede::store::PostKind::File => "fil i tråden",
        };
        writeln!(text, "- **{what}**: {}", e.post.body.replace('\n', "\n  "))?;
    }
    std::fs::write(&transcript, text)?;
    println!("   Transkript: {}", transcript.display());
    println!("   Oppsett: {}", config_path.display());
    if !args.exit {
        println!();
        println!("Demoen kjører til du trykker Ctrl-C. Logg inn som {demo} og se sakene i rommene.");
        tilstede::service::termination().await;
    }
    running.shutdown().await?;
    drop(server);
    Ok(ExitCode::SUCCESS)
}
