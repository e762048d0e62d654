//! `tilstede purge`: the retention purges the service runs, once, from the
//! command line (for a gateway run without `serve`, or from a timer).

use anyhow::Result;
use chrono::{DateTime, Utc};
use std::path::Path;
use std::process::ExitCode;
use tilstede::config::Config;
use tilstede::domain::dates::{norwegian, school_date_utc};
use tilstede::render::count;
use tilstede::store::Store;

/// Purges closed cases past `[cases] retention_days`, absence data past
/// `[retention] school_years` and quarantine entries past `[quarantine]
/// retention_days`, as of `now`, and prints what went, as counts.
pub async fn run(config: &Path, now: Option<DateTime<Utc>>) -> Result<ExitCode> {
    let config = Config::load(config)?;
    let now = now.unwrap_or_else(Utc::now);
    let store = Store::open_with(&config.store, config.sqlite_synchronous).await?;
    let closed_before = now - chrono::Duration::days(i64::from(config.cases.retention_days));
    let cases = store.purge_closed_cases(closed_before).await?;
    let cutoff = config.retention.cutoff(school_date_utc(now));
    let expired = store.purge_expired(cutoff).await?;
    let quarantined = store.purge_quarantine(config.quarantine.cutoff(now)).await?;
    store.close().await;
    let n = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
    let sets = n(cases.extension_sets + expired.extension_sets);
    println!(
        "Oppbevaring: fravær fra og med {} ({}), saker til {} dager etter at de ble avsluttet, karantene i {} dager.",
        norwegian(cutoff),
        count(i64::from(config.retention.school_years), "skoleår", "skoleår"),
        config.cases.retention_days,
        config.quarantine.retention_days
    );
    println!(
        "Slettet: {}, {}, {}, {}, {}.",
        count(n(expired.records), "fraværsregistrering", "fraværsregistreringer"),
        count(n(expired.tombstones), "slettemarkering", "slettemarkeringer"),
        count(
            n(expired.finding_events + cases.finding_events),
            "funnhendelse",
            "funnhendelser"
        ),
        count(sets, "sett med tilleggsfelt", "sett med tilleggsfelt"),
        count(n(quarantined), "post i karantene", "poster i karantene"),
    );
    println!(
        "Saker: {} slettet, {} i loggen uten detaljer, {} i kø for tilbaketrekking.",
        count(i64::try_from(cases.cases.len()).unwrap_or(i64::MAX), "sak", "saker"),
        count(n(cases.audit_rows_scrubbed), "rad", "rader"),
        count(
            i64::try_from(cases.redactions).unwrap_or(i64::MAX),
            "Matrix-melding",
            "Matrix-meldinger"
        ),
    );
    Ok(ExitCode::SUCCESS)
}
