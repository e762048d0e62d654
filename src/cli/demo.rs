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

/// Options of `tilstede demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pupils in the generated municipality.
    #[arg(long, default_value_t = 150)]
    pupils: usize,
    /// Schools.
    #[arg(long, default_value_t = 2)]
    schools: usize,
    /// Seed of the generator (the same seed gives the same municipality).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Where the store, the config and the transcript go.
    #[arg(long, default_value = "demo-data")]
    dir: PathBuf,
    /// Stop when everything is delivered instead of waiting for Ctrl-C.
    #[arg(long)]
    exit: bool,
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
    println!(
        "   {} saker er åpne; boten har postet {} meldinger.",
        cases.len(),
        last.1
    );
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
