//! `vendor-rest` against the fake vendor API: each paging style with 500s
//! and 429s on the way, no record lost or duplicated; the since mark moves
//! only after a committed run; `tilstede sync` with an API key from a file.

use crate::fake::vendor::{self, API_KEY, CLIENT_ID, CLIENT_SECRET, VendorState};
use crate::support::{store_backends, tilstede_ok};
use std::collections::BTreeSet;
use std::time::Duration;
use tilstede::adapters::profile::Profile;
use tilstede::adapters::rest::{Auth, RestClient, RetryPolicy};
use tilstede::adapters::vendor_rest::{CURSOR_STREAM, Paging, sync};

const N: usize = 230;

fn retry() -> RetryPolicy {
    RetryPolicy {
        attempts: 4,
        base_delay: Duration::from_millis(5),
        max_delay: Duration::from_secs(1),
        timeout: Duration::from_secs(5),
    }
}

fn oauth(addr: std::net::SocketAddr) -> RestClient {
    RestClient::new(
        Auth::ClientCredentials {
            token_url: format!("http://{addr}/oauth/token"),
            client_id: CLIENT_ID.into(),
            client_secret: CLIENT_SECRET.into(),
            scope: None,
        },
        retry(),
    )
    .unwrap()
}

fn populated(changed_at: i64) -> VendorState {
    let mut state = VendorState::default();
    for i in 0..N {
        let kind = if i % 3 == 0 { "Timesfravær" } else { "Dagsfravær" };
        state.records.push((
            changed_at,
            vendor::flyt_record(
                &format!("f{i}"),
                &format!("e{}", i / 10),
                2 + (i % 20) as u32,
                kind,
                i % 2 == 0,
                "sykdom",
            ),
        ));
    }
    state
}

/// The flyt-rest profile set to one of the fake's paging styles.
fn profile(style: &str) -> Profile {
    let mut p = Profile::load("flyt-rest").unwrap();
    let rest = p.rest.as_mut().unwrap();
    rest.page_size = 50;
    rest.paths = vec![format!("/{style}/fravaer")];
    match style {
        "offset" => {
            rest.paging = Paging::Offset { param: "offset".into() };
            rest.size_param = Some("limit".into());
        }
        "page" => {
            rest.paging = Paging::Page {
                param: "side".into(),
                first: 1,
            };
            rest.size_param = Some("per_side".into());
            rest.records = String::new();
        }
        "next" => {
            rest.paging = Paging::NextLink {
                path: "links.next".into(),
            };
            rest.size_param = Some("limit".into());
        }
        _ => {} // the shipped profile pages by cursor
    }
    p
}

#[tokio::test]
async fn every_paging_style_recovers_without_losing_or_duplicating() {
    for style in ["offset", "page", "next", "cursor"] {
        for store in store_backends().await {
            let old = chrono::Utc::now().timestamp_millis() - 60_000;
            let server = vendor::start(populated(old)).await;
            // A 500 before the first page and a 429 before the third.
            server.state.lock().unwrap().faults = [500, 200, 200, 429].into();
            let client = oauth(server.addr);
            let p = profile(style);
            let base = format!("http://{}", server.addr);
            let r = sync(&client, &base, &p, &store, "flyt", &tilstede::config::Schools::All)
                .await
                .unwrap();
            assert_eq!(r.pages, 5, "{style}: {r:?}");
            assert_eq!(
                (r.stats.received, r.stats.changed),
                (N as u64, N as u64),
                "{style}: {r:?}"
            );
            assert_eq!(store.record_count().await.unwrap(), (N as u64, 0), "{style}");
            let served = server.state.lock().unwrap().served.clone();
            let distinct: BTreeSet<&(String, String)> = served.iter().collect();
            assert_eq!((served.len(), distinct.len()), (5, 5), "{style}: {served:?}");
            let cursor: i64 = store
                .sync_cursor("flyt", CURSOR_STREAM)
                .await
                .unwrap()
                .unwrap()
                .parse()
                .unwrap();
            assert!(cursor > old, "{style}");

            // One record changes after the mark, one arrives: only they come back.
            {
                let mut s = server.state.lock().unwrap();
                s.served.clear();
                s.records.retain(|(_, v)| v["id"] != "f7");
                s.records.push((
                    cursor + 1,
                    vendor::flyt_record("f7", "e0", 9, "Dagsfravær", true, "permisjon"),
                ));
                s.records.push((
                    cursor + 1,
                    vendor::flyt_record("ny", "e99", 9, "Dagsfravær", false, "annet"),
                ));
            }
            let r = sync(&client, &base, &p, &store, "flyt", &tilstede::config::Schools::All)
                .await
                .unwrap();
            assert_eq!(
                (r.stats.received, r.stats.changed, r.pages),
                (2, 2, 1),
                "{style}: {r:?}"
            );
            assert_eq!(store.record_count().await.unwrap(), (N as u64 + 1, 0), "{style}");
            let since = server.state.lock().unwrap().served[0].1.clone();
            let sent = chrono::DateTime::from_timestamp_millis(cursor)
                .unwrap()
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
            assert!(since.contains(&format!("endretEtter={sent}")), "{style}: {since}");
            assert_eq!(server.state.lock().unwrap().tokens_issued, 1, "{style}");
        }
    }
}

#[tokio::test]
async fn a_run_that_gives_up_keeps_its_mark_and_is_repeated() {
    let store = store_backends().await.remove(0);
    let server = vendor::start(populated(1)).await;
    // Two pages come through (200 = no fault), then the third fails more
    // often than the client tries.
    server.state.lock().unwrap().faults = [200, 200, 500, 500, 500, 500].into();
    let p = profile("offset");
    let base = format!("http://{}", server.addr);
    let client = oauth(server.addr);
    let err = sync(&client, &base, &p, &store, "flyt", &tilstede::config::Schools::All)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("4 forsøk"), "{err}");
    assert_eq!(store.sync_cursor("flyt", CURSOR_STREAM).await.unwrap(), None);
    assert_eq!(
        store.record_count().await.unwrap(),
        (100, 0),
        "the committed pages stay"
    );
    let r = sync(&client, &base, &p, &store, "flyt", &tilstede::config::Schools::All)
        .await
        .unwrap();
    assert_eq!(r.stats.received, N as u64);
    assert_eq!(store.record_count().await.unwrap(), (N as u64, 0));
    assert!(store.sync_cursor("flyt", CURSOR_STREAM).await.unwrap().is_some());
}

#[tokio::test]
async fn sync_command_runs_a_vendor_rest_source_with_an_api_key_file() {
    let mut state = VendorState::default();
    let vis = |pupil: &str, time: u32, code: &str| serde_json::json!({"elevnr": pupil, "skolenr": "s1", "dato": "2026-03-03", "time": time, "omfang": "time", "kode": code});
    // 7 lessons, one of them "other teaching" (not absence).
    for t in 1..=6 {
        state.records.push((1, vis("e1", t, "X")));
    }
    state.records.push((1, vis("e2", 1, "!")));
    let server = vendor::start(state).await;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, format!("{API_KEY}\n")).unwrap();
    let profile = dir.path().join("vis.toml");
    std::fs::write(
        &profile,
        include_str!("../../adapters/vis/rest.toml")
            .replace("\"/fravaer\"", "\"/page/fravaer\"")
            .replace("size = 200", "size = 4"),
    )
    .unwrap();
    let config = dir.path().join("adapters.toml");
    std::fs::write(
        &config,
        format!(
            "[sources.vis]\nschools = [\"*\"]\nadapter = \"vendor-rest\"\nprofile = \"{}\"\nbase_url = \"http://{}\"\napi_key_file = \"{}\"\n",
            profile.display(),
            server.addr,
            key.display()
        ),
    )
    .unwrap();
    let store = dir.path().join("t.db");
    let args: Vec<String> = ["sync", "vis", "--config", config.to_str().unwrap()]
        .map(String::from)
        .into();
    let (out, _) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tilstede_ok(&store, &args)
    })
    .await
    .unwrap();
    assert!(out.contains("2 sider, 6 poster"), "{out}");
    let served = server.state.lock().unwrap().served.clone();
    assert_eq!(served[0].1, "per_side=4&side=1", "{served:?}");
    assert_eq!(server.state.lock().unwrap().tokens_issued, 0);
}
