//! `khien serve --demo`: a demo operator on the running hub, loaded the
//! way a real one would be — indicators imported from real public feeds,
//! a subscriber directory and a RADIUS accounting file uploaded over the
//! API, and a resolver log replayed through the sensor to the hub — so a
//! newcomer sees cases, statistics and lookups at once.
//!
//! The demo operator also has a walled-garden notice listener on the port
//! after the hub's (8081 by default), and one more subscriber at 127.0.0.1
//! whose device the replayed log shows infected: the newcomer's own
//! browser sees the warning there and can acknowledge it, as a subscriber
//! would.
//!
//! The sample resolver log is a year old; the replay moves its times so
//! that it ends a few minutes ago, otherwise every case would be resolved
//! for lack of recent hits. Loading twice is harmless: a second start only
//! prints a fresh key.

use std::io::Write;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use khien_formats::read::{ImportDefaults, ReadEvent, read_list};
use khien_hub::HubConfig;
use khien_model::{Confidence, Family, OrgRole, ThreatType, Tlp, UserRole};
use khien_sensor::{OutputConfig, Sensor, SensorConfig};
use khien_store::{NewApiKey, NewUser, Store};
use serde::Serialize;

use crate::i18n::t;
use crate::output;

const ORG: &str = "demo-isp";
const ORG_NAME: &str = "ISP Demo (VN)";
const SENSOR: &str = "demo-resolver";
const LOG: &str = include_str!("../../../examples/telemetry/unbound-queries.log");
/// Real trail lists (maltrail, MIT), with the family each names.
const FEEDS: [(&str, &str); 3] = [
    (
        "flubot",
        include_str!("../../../examples/feeds/maltrail/android_flubot.txt"),
    ),
    (
        "oceanlotus",
        include_str!("../../../examples/feeds/maltrail/apt_oceanlotus.txt"),
    ),
    (
        "darkpink",
        include_str!("../../../examples/feeds/maltrail/apt_darkpink.txt"),
    ),
];

/// Subscribers of the demo operator: (id, name, e-mail, phone, address
/// the RADIUS log gives them). The last one is this machine, so that a
/// browser here sees its web notice.
const SUBSCRIBERS: [(&str, &str, &str, &str, &str); 7] = [
    (
        "HN-0001",
        "Nguyễn Văn An",
        "an.nguyen@example.vn",
        "0912 345 601",
        "113.161.2.45",
    ),
    (
        "HCM-0002",
        "Trần Thị Bình",
        "binh.tran@example.vn",
        "0903 456 702",
        "14.232.17.9",
    ),
    (
        "HN-0003",
        "Lê Minh Châu",
        "chau.le@example.vn",
        "0987 654 303",
        "113.161.0.95",
    ),
    (
        "DN-0004",
        "Phạm Quốc Dũng",
        "dung.pham@example.vn",
        "0935 111 204",
        "113.161.0.24",
    ),
    (
        "HP-0005",
        "Hoàng Thu Hà",
        "ha.hoang@example.vn",
        "0977 222 305",
        "113.161.1.163",
    ),
    (
        "CT-0006",
        "Võ Thanh Hải",
        "hai.vo@example.vn",
        "0918 333 406",
        "113.161.0.143",
    ),
    (
        "HN-0007",
        "Đỗ Thị Yến",
        "yen.do@example.vn",
        "0912 345 607",
        "127.0.0.1",
    ),
];

/// What the subscriber at 127.0.0.1 asked for: a FluBot C&C name from
/// the imported trail.
const LOCAL_QUERY: &str = "127.0.0.1 aanwraenfbhdaaf.cn. A IN";

/// Readies `config` for the demo before the hub starts: the demo operator
/// exists (its notice listener names it) and has a notice listener on the
/// port after the hub's, unless the configuration has listeners already.
pub fn prepare(config: &mut HubConfig) -> anyhow::Result<()> {
    let (mut store, _) = khien_hub::open_admin_store(config)?;
    if store.org_by_slug(ORG)?.is_none() {
        store.create_org(ORG, ORG_NAME, OrgRole::Operator)?;
    }
    // Links in the demo's warnings go to this hub, wherever it listens.
    if config.notifications.public_url == khien_hub::NotificationConfig::default().public_url
        && config.listen.port() != 0
    {
        config.notifications.public_url = format!("http://{}", config.listen);
    }
    if config.notifications.notice.is_empty() {
        let mut listen = config.listen;
        if listen.port() != 0 {
            listen.set_port(listen.port().saturating_add(1));
        }
        config.notifications.notice.push(khien_hub::NoticeListener {
            org: ORG.into(),
            listen,
        });
    }
    Ok(())
}

/// What the demo loaded, for the newcomer.
#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub organization: String,
    pub indicators: u64,
    pub subscribers: u64,
    pub hits: u64,
    pub cases: u64,
    /// An admin key of the demo operator.
    pub api_key: String,
    pub user: String,
    pub setup_token: String,
    pub base: String,
    /// The walled-garden notice this machine's browser sees.
    pub notice: Option<String>,
}

impl DemoReport {
    pub fn print(&self, json: bool) -> anyhow::Result<()> {
        if json {
            return output::json(self);
        }
        output::line(&t(
            "demo.loaded",
            &[
                ("org", &self.organization),
                ("indicators", &self.indicators),
                ("subscribers", &self.subscribers),
                ("hits", &self.hits),
                ("cases", &self.cases),
            ],
        ));
        output::line(&t(
            "demo.try",
            &[("base", &self.base), ("key", &self.api_key)],
        ));
        output::line(&t(
            "demo.user",
            &[("email", &self.user), ("token", &self.setup_token)],
        ));
        if let Some(url) = &self.notice {
            output::line(&t("demo.notice", &[("url", url)]));
        }
        Ok(())
    }
}

fn import_feeds(store: &mut Store) -> anyhow::Result<u64> {
    let now = Utc::now();
    let mut records = Vec::new();
    for (family, text) in FEEDS {
        let defaults = ImportDefaults {
            source: "maltrail".into(),
            tlp: Tlp::Clear,
            confidence: Confidence::new(70)?,
            family: Some(Family::new(family)?),
            threat_type: ThreatType::C2,
            now,
            force: true,
            include_not_for_detection: false,
        };
        let mut sink = |e: ReadEvent| {
            if let ReadEvent::Record(r) = e {
                records.push(r);
            }
            Ok(())
        };
        read_list(text.as_bytes(), &defaults, &mut sink)?;
    }
    let lists = khien_formats::warninglist::WarninglistSet::embedded_default()?;
    let verdicts: Vec<Option<String>> = records
        .iter()
        .map(|r| lists.check(&r.observable).map(str::to_string))
        .collect();
    let mut importer = store.import(false)?;
    let outcome = importer.add_batch(&records, &verdicts)?;
    importer.commit()?;
    Ok(outcome.new + outcome.updated + outcome.unchanged)
}

/// The sample log with its times moved to end five minutes ago.
fn shifted_log() -> String {
    let stamp =
        |line: &str| -> Option<i64> { line.strip_prefix('[')?.split(']').next()?.parse().ok() };
    let last = LOG.lines().filter_map(stamp).max().unwrap_or(0);
    let shift = Utc::now().timestamp() - 300 - last;
    let mut log: String = LOG
        .lines()
        .map(|l| match (stamp(l), l.find(']')) {
            (Some(t), Some(end)) => format!("[{}{}\n", t + shift, &l[end..]),
            _ => format!("{l}\n"),
        })
        .collect();
    log.push_str(&format!(
        "[{}] unbound[1811:0] info: {LOCAL_QUERY}\n",
        last + shift
    ));
    log
}

fn post(
    agent: &ureq::Agent,
    url: &str,
    key: &str,
    content_type: &str,
    body: &str,
) -> anyhow::Result<serde_json::Value> {
    let mut r = agent
        .post(url)
        .header("Authorization", &format!("Bearer {key}"))
        .header("Content-Type", content_type)
        .send(body.as_bytes())
        .with_context(|| format!("POST {url}"))?;
    let status = r.status().as_u16();
    let text = r.body_mut().read_to_string().unwrap_or_default();
    if status != 200 {
        bail!("POST {url}: HTTP {status}: {text}");
    }
    Ok(serde_json::from_str(&text)?)
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .with_context(|| format!("{}", path.display()))
}

/// Loads the demo into the hub at `base` (which serves `config`).
pub fn load(
    config: &HubConfig,
    base: &str,
    notice: Option<std::net::SocketAddr>,
) -> anyhow::Result<DemoReport> {
    let (mut store, _) = khien_hub::open_admin_store(config)?;
    let dir = config.data_dir.join("demo");
    std::fs::create_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    let org = match store.org_by_slug(ORG)? {
        Some(o) => o,
        None => store.create_org(ORG, ORG_NAME, OrgRole::Operator)?,
    };
    // [`prepare`] may have made the organisation: its subscribers say
    // whether the demo was loaded before.
    let fresh = store
        .subscribers(
            org.id,
            khien_store::Page {
                after: None,
                limit: 1,
            },
        )?
        .is_empty();
    let (_, api_key) = store.create_api_key(&NewApiKey {
        org_id: org.id,
        name: "demo-admin",
        scopes: &["admin"],
        created_by: None,
    })?;
    let email = "demo@khien.local";
    let user = match store.login_record(email)? {
        Some(r) => r.user,
        None => store.create_user(&NewUser {
            org_id: org.id,
            email,
            display_name: "Demo operator",
            role: UserRole::Admin,
            language: "vi",
        })?,
    };
    let setup_token = store.create_setup_token(user.id, 72 * 3600)?;
    let indicators = import_feeds(&mut store)?;
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into();
    let mut hits = 0;
    if fresh {
        let mut csv = String::from("id,name,email,phone,language\n");
        for (id, name, mail, phone, _) in SUBSCRIBERS {
            csv.push_str(&format!("{id},{name},{mail},{phone},vi\n"));
        }
        post(
            &agent,
            &format!("{base}/api/v1/subscribers"),
            &api_key,
            "text/csv",
            &csv,
        )?;
        // Sessions began a day before the log's (moved) first line.
        let start = Utc::now() - chrono::Duration::days(2);
        let mut radius = String::from("time,status,user,address,session\n");
        for (i, (id, _, _, _, addr)) in SUBSCRIBERS.iter().enumerate() {
            radius.push_str(&format!(
                "{},Start,{id},{addr},demo-{i}\n",
                start.to_rfc3339()
            ));
        }
        post(
            &agent,
            &format!("{base}/api/v1/attribution?format=radius-csv"),
            &api_key,
            "text/plain",
            &radius,
        )?;
        hits = replay(&mut store, org.id, &dir, base)?;
        // The hub's case job follows the stored hits within a second.
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while store.hits_pending()? && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let cases = agent
        .get(format!("{base}/api/v1/cases?limit=1000"))
        .header("Authorization", &format!("Bearer {api_key}"))
        .call()
        .ok()
        .and_then(|mut r| r.body_mut().read_to_string().ok())
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|v| v["items"].as_array().map(|a| a.len() as u64))
        .unwrap_or(0);
    Ok(DemoReport {
        organization: ORG.into(),
        indicators,
        subscribers: SUBSCRIBERS.len() as u64,
        hits,
        cases,
        api_key,
        user: email.into(),
        setup_token,
        base: base.into(),
        notice: notice.map(|a| format!("http://127.0.0.1:{}/", a.port())),
    })
}

/// Replays the moved sample log through a sensor to the hub; returns the
/// events matched.
fn replay(store: &mut Store, org_id: i64, dir: &Path, base: &str) -> anyhow::Result<u64> {
    let (_, sensor_key) = store.create_api_key(&NewApiKey {
        org_id,
        name: SENSOR,
        scopes: &["hits:write"],
        created_by: None,
    })?;
    let log = dir.join("unbound-queries.log");
    std::fs::write(&log, shifted_log()).with_context(|| format!("{}", log.display()))?;
    let key_file = dir.join("sensor.key");
    write_private(&key_file, &sensor_key)?;
    let (bytes, _) = khien_hub::build_from_store(store, Utc::now())?;
    let snapshot = dir.join("snapshot.bin");
    std::fs::write(&snapshot, bytes).with_context(|| format!("{}", snapshot.display()))?;
    let state = dir.join("sensor-state");
    let _ = std::fs::remove_dir_all(&state);
    let mut config = SensorConfig::quick(
        &snapshot.display().to_string(),
        vec![format!("file:{}:unbound", log.display()).parse()?],
        vec![OutputConfig::Hub {
            url: base.to_string(),
            api_key_env: "KHIEN_API_KEY".into(),
            api_key_file: Some(key_file),
            spool_max_bytes: 64 << 20,
            timeout_seconds: 30,
        }],
    );
    config.sensor = SENSOR.into();
    config.state_dir = state;
    config.once = true;
    config.workers = Some(1);
    let summary =
        Sensor::build(config)?.run(Arc::new(AtomicBool::new(false)), Duration::from_secs(30))?;
    Ok(summary.hits)
}
