//! The sample's rows, generated deterministically from a seed and the row's position, as
//! engine-neutral values that the PostgreSQL and SQLite writers encode.

use crate::rng::{Rng, mix};

/// One column value.
#[derive(Debug, Clone, PartialEq)]
pub enum Val {
    /// SQL NULL.
    Null,
    /// bigint / int.
    Int(i64),
    /// text.
    Text(String),
    /// boolean.
    Bool(bool),
    /// numeric, as its exact decimal text.
    Numeric(String),
    /// double precision.
    F64(f64),
    /// real.
    F32(f32),
    /// bytea / BLOB.
    Bytes(Vec<u8>),
    /// jsonb / TEXT holding JSON.
    Json(String),
    /// uuid.
    Uuid([u8; 16]),
    /// timestamptz, microseconds since the Unix epoch (UTC).
    Ts(i64),
    /// text[] (elements may be NULL).
    TextArray(Vec<Option<String>>),
}

/// The tables, parents before children.
pub const TABLES: [&str; 5] = ["users", "projects", "entities", "acl", "events"];

/// Column names per table (in [`TABLES`] order), matching the generators below.
pub fn columns(table: &str) -> &'static [&'static str] {
    match table {
        "users" => &[
            "id",
            "user_name",
            "email",
            "display_name",
            "created_at",
            "is_admin",
            "balance",
            "score",
            "avatar",
            "settings",
            "external_id",
            "tags",
        ],
        "projects" => &[
            "id",
            "owner_id",
            "name",
            "description",
            "created_at",
            "budget",
            "public",
        ],
        "entities" => &[
            "id",
            "project_id",
            "parent_id",
            "name",
            "kind",
            "size_bytes",
            "content",
            "annotations",
            "modified_at",
            "version",
        ],
        "acl" => &["entity_id", "principal_id", "access", "granted_at"],
        "events" => &["id", "user_id", "kind", "payload", "at", "ratio"],
        other => panic!("unknown sample table {other}"),
    }
}

/// How many rows each table gets for a total of `rows` (users 5%, projects 1%, entities 40%,
/// acl 30%, events 24%; at least one row per table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// users rows.
    pub users: u64,
    /// projects rows.
    pub projects: u64,
    /// entities rows.
    pub entities: u64,
    /// acl rows.
    pub acl: u64,
    /// events rows.
    pub events: u64,
}

impl Counts {
    /// The split of `rows` (at least 5).
    pub fn for_total(rows: u64) -> Counts {
        let rows = rows.max(5);
        let users = (rows / 20).max(1);
        let projects = (rows / 100).max(1);
        let entities = (rows * 2 / 5).max(1);
        let acl = (rows * 3 / 10).max(1);
        let events = rows - users - projects - entities - acl;
        Counts {
            users,
            projects,
            entities,
            acl,
            events,
        }
    }

    /// Rows of one table.
    pub fn of(&self, table: &str) -> u64 {
        match table {
            "users" => self.users,
            "projects" => self.projects,
            "entities" => self.entities,
            "acl" => self.acl,
            "events" => self.events,
            _ => 0,
        }
    }

    /// All rows.
    pub fn total(&self) -> u64 {
        self.users + self.projects + self.entities + self.acl + self.events
    }
}

const T_USERS: u64 = 1;
const T_PROJECTS: u64 = 2;
const T_ENTITIES: u64 = 3;
const T_ACL: u64 = 4;
const T_EVENTS: u64 = 5;

/// 2015-01-01T00:00:00Z in microseconds.
const BASE_TS: i64 = 1_420_070_400_000_000;
const YEAR_US: i64 = 365 * 24 * 3600 * 1_000_000;

const FIRST: &[&str] = &[
    "Ana",
    "Bjørn",
    "Chloé",
    "Dmitri",
    "Émilie",
    "Fatima",
    "Giulia",
    "Hiroshi",
    "Ingrid",
    "José",
    "Kwame",
    "Léa",
    "Mohammed",
    "Nadia",
    "Oğuz",
    "Priya",
    "Quentin",
    "Rosa",
    "Søren",
    "Tomás",
    "Uwe",
    "Valentina",
    "Wei",
    "Xiomara",
    "Yusuf",
    "Zoë",
];
const LAST: &[&str] = &[
    "Smith",
    "Müller",
    "García",
    "O'Brien",
    "Nguyễn",
    "Kowalski",
    "Dubois",
    "van der Berg",
    "Øster",
    "Łukasiewicz",
    "Papadopoulos",
    "Johansson",
];
/// Display names that stress encoders: scripts, RTL, combining marks, emoji, quotes,
/// backslashes, control characters and things that look like syntax.
const EXOTIC: &[&str] = &[
    "山田 太郎",
    "Иван Петров",
    "مرحبا بالعالم",
    "\u{5e9}\u{5dc}\u{5d5}\u{5dd} \u{200f}(rtl)",
    "e\u{301}le\u{300}ve combining",
    "Zalgo z\u{336}\u{31b}a\u{337}l\u{335}g\u{338}o",
    "emoji 😀🚀👩‍👩‍👧‍👦🏳️‍🌈",
    "quote \" and ' and `",
    "back\\slash \\N \\x41",
    "tab\there",
    "new\nline\r\nand CR",
    "",
    " leading and trailing ",
    "NULL",
    "\\.",
    "{\"json\": [1,2]}",
    "comma, semicolon; pipe|",
    "🇫🇷🇯🇵 flags",
    "\u{feff}BOM",
    "𝕄𝕒𝕥𝕙 𝔽𝕣𝕒𝕜𝕥𝕦𝕣",
];
const TAGS: &[&str] = &[
    "alpha",
    "beta",
    "prod",
    "dev",
    "with space",
    "quote\"",
    "comma,",
    "{brace}",
    "NULL",
    "back\\slash",
    "",
    "ünïcödé",
    "😀",
];
const KINDS: &[&str] = &["folder", "file", "table", "link", "dataset", "docker"];
const EVENT_KINDS: &[&str] = &["login", "logout", "download", "upload", "share", "error"];
const ACCESS: &[&str] = &["read", "write", "admin", "owner"];
const WORDS: &[&str] = &[
    "genome",
    "cohort",
    "analysis",
    "raw",
    "processed",
    "v2",
    "final",
    "données",
    "研究",
    "model",
    "scan",
    "notes",
];

fn ts(r: &mut Rng, years: i64) -> Val {
    Val::Ts(BASE_TS + r.range(0, years * YEAR_US))
}

fn json_str(s: impl AsRef<str>) -> String {
    serde_json::to_string(s.as_ref()).expect("strings serialise")
}

fn uuid(r: &mut Rng) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[..8].copy_from_slice(&r.next_u64().to_le_bytes());
    b[8..].copy_from_slice(&r.next_u64().to_le_bytes());
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    b
}

fn decimal(r: &mut Rng, int_digits: u32, scale: u32) -> String {
    match r.below(40) {
        0 => "0".into(),
        1 => format!(
            "-{}.{}",
            "9".repeat(int_digits as usize),
            "9".repeat(scale as usize)
        ),
        2 => format!("0.{}1", "0".repeat(scale.saturating_sub(1) as usize)),
        _ => {
            let int = r.below(10u64.pow(int_digits.min(18)));
            let frac = r.below(10u64.pow(scale.min(18)));
            let sign = if r.chance(0.2) { "-" } else { "" };
            if scale == 0 {
                format!("{sign}{int}")
            } else {
                format!("{sign}{int}.{frac:0width$}", width = scale as usize)
            }
        }
    }
}

fn name(r: &mut Rng) -> String {
    if r.chance(0.08) {
        (*r.pick(EXOTIC)).to_owned()
    } else {
        format!("{} {}", r.pick(FIRST), r.pick(LAST))
    }
}

fn words(r: &mut Rng, n: usize) -> String {
    (0..n).map(|_| *r.pick(WORDS)).collect::<Vec<_>>().join(" ")
}

const SPECIAL_F64: [f64; 7] = [
    f64::NAN,
    f64::INFINITY,
    f64::NEG_INFINITY,
    -0.0,
    5e-324,
    f64::MAX,
    0.1 + 0.2,
];

fn score(r: &mut Rng) -> f64 {
    match r.below(60) {
        0 => f64::NAN,
        1 => f64::INFINITY,
        2 => f64::NEG_INFINITY,
        3 => -0.0,
        4 => 5e-324,
        5 => f64::MAX,
        6 => 0.1 + 0.2,
        _ => (r.unit() - 0.3) * 1e4,
    }
}

/// Row `id` (1-based) of `users`.
pub fn user(seed: u64, id: i64) -> Vec<Val> {
    let r = &mut Rng::new(mix(&[seed, T_USERS, id as u64]));
    // Every exotic name and special float shows up even in small samples.
    let display = if id % 10 == 0 {
        EXOTIC[(id / 10) as usize % EXOTIC.len()].to_owned()
    } else {
        name(r)
    };
    let score = if id % 9 == 0 {
        SPECIAL_F64[(id / 9) as usize % SPECIAL_F64.len()]
    } else {
        score(r)
    };
    let user_name = if r.chance(0.05) {
        format!("ユーザー_{id}")
    } else {
        format!("user{id:07}")
    };
    let email = if r.chance(0.1) {
        Val::Null
    } else {
        Val::Text(format!("user{id}@example.org"))
    };
    let avatar = match r.below(20) {
        0..=3 => Val::Null,
        4 => Val::Bytes(Vec::new()),
        _ => {
            let n = r.range(8, 96) as usize;
            Val::Bytes(r.bytes(n))
        }
    };
    let settings = format!(
        "{{\"theme\": {}, \"lang\": {}, \"notify\": {{\"email\": {}, \"digest\": {}}}, \"nick\": {}, \"limits\": [{}, {}]}}",
        json_str(if r.chance(0.5) { "dark" } else { "light" }),
        json_str(r.pick(&["en", "fr", "ja", "ar", "pt-BR"])),
        r.chance(0.7),
        json_str(r.pick(&["daily", "weekly", "never"])),
        json_str(&display),
        r.below(1000),
        r.range(-5, 5),
    );
    let tags = if r.chance(0.1) {
        Val::Null
    } else {
        let n = r.below(5) as usize;
        Val::TextArray(
            (0..n)
                .map(|_| {
                    if r.chance(0.03) {
                        None
                    } else {
                        Some((*r.pick(TAGS)).to_owned())
                    }
                })
                .collect(),
        )
    };
    vec![
        Val::Int(id),
        Val::Text(user_name),
        email,
        Val::Text(display),
        ts(r, 8),
        Val::Bool(r.chance(0.02)),
        Val::Numeric(decimal(r, 14, 6)),
        Val::F64(score),
        avatar,
        Val::Json(settings),
        Val::Uuid(uuid(r)),
        tags,
    ]
}

/// Row `id` of `projects` (owners among `users` users).
pub fn project(seed: u64, id: i64, users: u64) -> Vec<Val> {
    let r = &mut Rng::new(mix(&[seed, T_PROJECTS, id as u64]));
    vec![
        Val::Int(id),
        Val::Int(1 + r.below(users.max(1)) as i64),
        Val::Text(format!("{} {id}", words(r, 2))),
        if r.chance(0.3) {
            Val::Null
        } else {
            Val::Text(if r.chance(0.1) { name(r) } else { words(r, 12) })
        },
        ts(r, 8),
        Val::Numeric(decimal(r, 20, 4)),
        Val::Bool(r.chance(0.4)),
    ]
}

/// Row `id` of `entities`: a forest whose parents always have smaller ids.
pub fn entity(seed: u64, id: i64, projects: u64) -> Vec<Val> {
    let r = &mut Rng::new(mix(&[seed, T_ENTITIES, id as u64]));
    let parent = if id == 1 || r.chance(0.05) {
        Val::Null
    } else {
        Val::Int(r.range((id - 2000).max(1), id - 1))
    };
    let content = match r.below(10) {
        0..=3 => Val::Null,
        4 => Val::Bytes(Vec::new()),
        _ => {
            let n = r.range(16, 500) as usize;
            Val::Bytes(r.bytes(n))
        }
    };
    let annotations = format!(
        "{{\"md5\": \"{:016x}{:016x}\", \"labels\": [{}, {}], \"score\": {}, \"nested\": {{\"ok\": {}, \"n\": null}}}}",
        r.next_u64(),
        r.next_u64(),
        json_str(r.pick(TAGS)),
        json_str(r.pick(WORDS)),
        r.below(1_000_000) as f64 / 1000.0,
        r.chance(0.5),
    );
    vec![
        Val::Int(id),
        Val::Int(1 + r.below(projects.max(1)) as i64),
        parent,
        Val::Text(if r.chance(0.05) {
            (*r.pick(EXOTIC)).to_owned()
        } else {
            format!("{}_{id}.dat", r.pick(WORDS))
        }),
        Val::Text((*r.pick(KINDS)).to_owned()),
        Val::Int(match r.below(20) {
            0 => 0,
            1 => i64::MAX,
            _ => r.below(1 << 40) as i64,
        }),
        content,
        Val::Json(annotations),
        ts(r, 10),
        Val::Int(r.range(1, 50)),
    ]
}

/// The acl rows of entity `entity` (how many: `n`, spread evenly by [`acl_count`]).
pub fn acl(seed: u64, entity: i64, n: u64, users: u64) -> Vec<Vec<Val>> {
    let r = &mut Rng::new(mix(&[seed, T_ACL, entity as u64]));
    let users = users.max(1);
    let start = r.below(users);
    let a0 = r.below(ACCESS.len() as u64);
    (0..n)
        .map(|j| {
            let principal = 1 + ((start + j) % users) as i64;
            let access = ACCESS[((a0 + j / users) % ACCESS.len() as u64) as usize];
            vec![
                Val::Int(entity),
                Val::Int(principal),
                Val::Text(access.to_owned()),
                ts(r, 10),
            ]
        })
        .collect()
}

/// How many acl rows entity `entity` (1-based, of `entities`) gets so that they add up to `acl`.
pub fn acl_count(entity: u64, entities: u64, acl: u64) -> u64 {
    let upto = |e: u64| (e as u128 * acl as u128 / entities.max(1) as u128) as u64;
    upto(entity) - upto(entity - 1)
}

/// The sparse keys of `events`: huge gaps, dense runs, spread up to about 10^15.
pub struct EventIds {
    rng: Rng,
    next: i64,
    avg_gap: u64,
}

impl EventIds {
    /// The key sequence for `events` rows.
    pub fn new(seed: u64, events: u64) -> EventIds {
        EventIds {
            rng: Rng::new(mix(&[seed, T_EVENTS, u64::MAX])),
            next: 0,
            avg_gap: (1_000_000_000_000_000 / events.max(1)).max(4),
        }
    }
}

impl Iterator for EventIds {
    type Item = i64;
    fn next(&mut self) -> Option<i64> {
        let r = &mut self.rng;
        let gap = match r.below(100) {
            0..=59 => r.range(1, 3) as u64,
            60..=98 => 1 + r.below(3 * self.avg_gap / 2),
            _ => self.avg_gap * 8 + r.below(self.avg_gap),
        };
        self.next += gap as i64;
        Some(self.next)
    }
}

/// Row with key `id` of `events`.
pub fn event(seed: u64, id: i64, users: u64) -> Vec<Val> {
    let r = &mut Rng::new(mix(&[seed, T_EVENTS, id as u64]));
    let kind = *r.pick(EVENT_KINDS);
    let payload = format!(
        "{{\"kind\": {}, \"ip\": \"10.{}.{}.{}\", \"agent\": {}, \"bytes\": {}, \"ok\": {}}}",
        json_str(kind),
        r.below(256),
        r.below(256),
        r.below(256),
        json_str(if r.chance(0.05) {
            EXOTIC[r.below(EXOTIC.len() as u64) as usize]
        } else {
            "Mozilla/5.0"
        }),
        r.below(1 << 32),
        r.chance(0.9),
    );
    let ratio = match r.below(50) {
        0 => f32::NAN,
        1 => f32::INFINITY,
        2 => f32::NEG_INFINITY,
        3 => -0.0,
        _ => r.unit() as f32,
    };
    vec![
        Val::Int(id),
        if r.chance(0.1) {
            Val::Null
        } else {
            Val::Int(1 + r.below(users.max(1)) as i64)
        },
        Val::Text(kind.to_owned()),
        Val::Json(payload),
        ts(r, 10),
        Val::F32(ratio),
    ]
}

/// Formats a timestamp as `YYYY-MM-DD HH:MM:SS.ffffff+00`.
pub fn format_ts(micros: i64, out: &mut String) {
    use std::fmt::Write;
    let secs = micros.div_euclid(1_000_000);
    let us = micros.rem_euclid(1_000_000);
    let days = secs.div_euclid(86_400);
    let sod = secs.rem_euclid(86_400);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let _ = write!(
        out,
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{us:06}+00",
        sod / 3600,
        sod % 3600 / 60,
        sod % 60
    );
}

/// Formats a uuid as `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn format_uuid(b: &[u8; 16]) -> String {
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_add_up() {
        for n in [5u64, 7, 100, 1234, 5_000_000] {
            let c = Counts::for_total(n);
            assert_eq!(c.total(), n.max(5), "{c:?}");
            let acl: u64 = (1..=c.entities)
                .map(|e| acl_count(e, c.entities, c.acl))
                .sum();
            assert_eq!(acl, c.acl);
        }
    }

    #[test]
    fn timestamps_format_like_postgres() {
        let mut s = String::new();
        format_ts(BASE_TS + 1, &mut s);
        assert_eq!(s, "2015-01-01 00:00:00.000001+00");
        s.clear();
        format_ts(951_782_400_000_000, &mut s); // 2000-02-29
        assert_eq!(s, "2000-02-29 00:00:00.000000+00");
    }

    #[test]
    fn event_ids_are_sparse_and_increasing() {
        let ids: Vec<i64> = EventIds::new(1, 1000).take(1000).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
        assert!(ids.windows(2).any(|w| w[1] - w[0] == 1), "dense runs");
        assert!(*ids.last().unwrap() > 100_000_000_000_000, "{}", ids[999]);
        assert!(*ids.last().unwrap() < 2_000_000_000_000_000);
    }

    #[test]
    fn rows_are_deterministic_and_sized() {
        assert_eq!(user(3, 10), user(3, 10));
        assert_ne!(user(3, 10), user(4, 10));
        assert_eq!(user(3, 10).len(), columns("users").len());
        assert_eq!(project(3, 1, 5).len(), columns("projects").len());
        assert_eq!(entity(3, 1, 5).len(), columns("entities").len());
        assert_eq!(acl(3, 1, 2, 5)[0].len(), columns("acl").len());
        assert_eq!(event(3, 1, 5).len(), columns("events").len());
        for id in 2..500 {
            if let Val::Int(p) = entity(3, id, 5)[2] {
                assert!(p < id && p >= 1);
            }
        }
    }
}
