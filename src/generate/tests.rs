//! Tests of the generator, with a small reference classifier that follows the cleaning rules (README, "Every line is accounted for").

use std::collections::{HashMap, HashSet};
use std::fmt;

use chrono::{NaiveDateTime, Timelike};
use serde::de::{Deserialize, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::*;

fn run(options: &GenerateOptions) -> (Vec<u8>, GenerateStats) {
    let mut out = Vec::new();
    let stats = generate(options, &mut out).expect("generate");
    (out, stats)
}

fn opts(lines: u64, seed: u64) -> GenerateOptions {
    GenerateOptions {
        lines,
        seed,
        ..GenerateOptions::default()
    }
}

/// Lines as the cleaning rules split them: on `\n`, one trailing `\r` removed.
fn split(bytes: &[u8]) -> Vec<&[u8]> {
    assert_eq!(bytes.last(), Some(&b'\n'), "every line ends with a newline");
    bytes[..bytes.len() - 1]
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
        .collect()
}

/// Top-level members of a JSON object in their order, values raw.
struct Members(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for Members {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Members;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Members, A::Error> {
                let mut members = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    members.push((key, map.next_value::<Box<RawValue>>()?));
                }
                Ok(Members(members))
            }
        }
        d.deserialize_map(V)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Loaded {
    event_id: String,
    customer_id: u64,
    fired_at: NaiveDateTime,
    user_id: u64,
    event_type: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    Blank,
    Event(Loaded),
    Rejected(&'static str),
}

fn parse_id(raw: &str) -> Option<u64> {
    let digits = match serde_json::from_str::<String>(raw) {
        Ok(s) => s,
        Err(_) => raw.to_owned(),
    };
    if digits.is_empty() || digits.len() > 19 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse::<u64>().ok().filter(|&n| n <= i64::MAX as u64)
}

fn parse_fired_at(raw: &str) -> Option<NaiveDateTime> {
    let s: String = serde_json::from_str(raw).ok()?;
    let b = s.as_bytes();
    let shape = b.len() == 20
        && b.iter().enumerate().all(|(i, &c)| match i {
            2 | 5 => c == b'/',
            10 => c == b',',
            11 => c == b' ',
            14 | 17 => c == b':',
            _ => c.is_ascii_digit(),
        });
    if shape {
        let t = NaiveDateTime::parse_from_str(&s, "%m/%d/%Y, %H:%M:%S").ok()?;
        return (t.nanosecond() < 1_000_000_000).then_some(t);
    }
    let t = chrono::DateTime::parse_from_rfc3339(&s).ok()?;
    (t.nanosecond() < 1_000_000_000
        && s.as_bytes()
            .get(10)
            .is_some_and(|c| *c == b'T' || *c == b't'))
    .then(|| t.naive_utc())
}

/// The cleaning rules, in check order (no length limit).
fn classify(line: &[u8]) -> Outcome {
    use Outcome::Rejected;
    if line.iter().all(|b| b" \t\r\x0b\x0c".contains(b)) {
        return Outcome::Blank;
    }
    let Ok(text) = std::str::from_utf8(line) else {
        return Rejected("invalid_utf8");
    };
    let Ok(serde_json::Value::Object(_)) = serde_json::from_str::<serde_json::Value>(text) else {
        return Rejected("invalid_json");
    };
    let members = serde_json::from_str::<Members>(text)
        .expect("valid object")
        .0;
    let known = [
        "event_id",
        "customer_id",
        "fired_at",
        "user_id",
        "event_type",
    ];
    let mut fields: HashMap<&str, &str> = HashMap::new();
    for (key, value) in &members {
        if let Some(k) = known.iter().find(|k| **k == key) {
            if fields.insert(k, value.get()).is_some() {
                return Rejected("invalid_json");
            }
        }
    }
    let get = |k: &str| fields.get(k).copied().filter(|v| *v != "null");

    let Some(raw) = get("event_id") else {
        return Rejected("missing_event_id");
    };
    let event_id = match serde_json::from_str::<String>(raw) {
        Ok(id) if !id.trim().is_empty() && id.len() <= 255 && !id.chars().any(char::is_control) => {
            id
        }
        _ => return Rejected("invalid_event_id"),
    };
    let Some(raw) = get("customer_id") else {
        return Rejected("missing_customer_id");
    };
    let Some(customer_id) = parse_id(raw) else {
        return Rejected("invalid_customer_id");
    };
    let Some(raw) = get("user_id") else {
        return Rejected("missing_user_id");
    };
    let Some(user_id) = parse_id(raw) else {
        return Rejected("invalid_user_id");
    };
    let Some(raw) = get("fired_at") else {
        return Rejected("missing_fired_at");
    };
    let Some(fired_at) = parse_fired_at(raw) else {
        return Rejected("invalid_fired_at");
    };
    let Some(raw) = get("event_type") else {
        return Rejected("missing_event_type");
    };
    let event_type = match serde_json::from_str::<String>(raw) {
        Ok(t) if CLEAN_EVENT_TYPES.contains(&t.as_str()) => t,
        _ => return Rejected("unknown_event_type"),
    };
    Outcome::Event(Loaded {
        event_id,
        customer_id,
        fired_at,
        user_id,
        event_type,
    })
}

/// What a loader following the cleaning rules makes of the file, as generator stats (lines and bytes
/// included; late lines, exact and conflicting duplicates told apart by the bytes).
fn expected_stats(bytes: &[u8]) -> GenerateStats {
    let mut stats = GenerateStats {
        lines: 0,
        bytes: bytes.len() as u64,
        ..GenerateStats::default()
    };
    let mut first: HashMap<(String, String), &[u8]> = HashMap::new();
    for line in split(bytes) {
        stats.lines += 1;
        match classify(line) {
            Outcome::Blank => stats.blank += 1,
            Outcome::Rejected(reason) => *stats.dirty_by_reason.get_mut(reason).unwrap() += 1,
            Outcome::Event(e) => {
                let key = (e.event_id, e.event_type);
                match first.get(&key) {
                    Some(original) if *original == line => stats.exact_duplicates += 1,
                    Some(_) => stats.conflicting_resends += 1,
                    None => {
                        *stats
                            .clean_by_type
                            .get_mut(key.1.as_str())
                            .expect("accepted type") += 1;
                        stats.clean_events += 1;
                        first.insert(key, line);
                    }
                }
            }
        }
    }
    stats
}

/// The stats agree with what a loader makes of the bytes (`late_events` is not visible there).
fn assert_outcomes(stats: &GenerateStats, bytes: &[u8]) {
    let expected = GenerateStats {
        late_events: stats.late_events,
        ..expected_stats(bytes)
    };
    assert_eq!(*stats, expected);
}

fn invariant_holds(s: &GenerateStats) -> bool {
    s.lines == s.clean_events + s.exact_duplicates + s.conflicting_resends + s.blank + s.rejected()
        && s.clean_events == s.clean_by_type.values().sum::<u64>()
}

fn all_rates() -> GenerateOptions {
    GenerateOptions {
        lines: 5_000,
        seed: 7,
        dirt_rate: 0.2,
        exact_duplicate_rate: 0.05,
        conflicting_resend_rate: 0.05,
        late_rate: 0.05,
        ..GenerateOptions::default()
    }
}

#[test]
fn same_seed_same_bytes_other_seed_other_bytes() {
    let options = all_rates();
    let (a, sa) = run(&options);
    let (b, sb) = run(&options);
    assert_eq!(a, b);
    assert_eq!(sa, sb);
    let (c, _) = run(&GenerateOptions { seed: 8, ..options });
    assert_ne!(a, c);
    let (d, _) = run(&opts(1_000, 1));
    let (e, _) = run(&opts(1_000, 2));
    assert_ne!(d, e);
}

#[test]
fn stats_count_what_was_written() {
    for options in [opts(0, 0), opts(1, 0), opts(3_000, 3), all_rates()] {
        let (bytes, stats) = run(&options);
        assert_eq!(stats.lines, options.lines);
        assert_eq!(stats.bytes, bytes.len() as u64);
        assert!(invariant_holds(&stats), "{stats:?}");
        if options.lines > 0 {
            assert_eq!(split(&bytes).len() as u64, stats.lines);
        }
    }
}

#[test]
fn clean_lines_look_like_the_real_file() {
    let (bytes, stats) = run(&opts(20_000, 11));
    let text = std::str::from_utf8(&bytes).unwrap();
    let keys = [
        "event_id",
        "customer_id",
        "fired_at",
        "user_id",
        "event_type",
        "ip",
        "email",
    ];
    let mut page_loads: HashMap<String, Loaded> = HashMap::new();
    let mut seen = HashSet::new();
    let mut user_contact: HashMap<u64, (String, String)> = HashMap::new();
    let mut types: HashMap<String, u64> = HashMap::new();
    let (mut follow_ups, mut within_300) = (0u64, 0u64);
    let mut previous: Option<NaiveDateTime> = None;
    for line in text.lines() {
        assert!(
            !line.contains(' ') || line.contains(", "),
            "compact: {line}"
        );
        assert!(
            line.contains(r#""fired_at":""#) && line.contains(r"\/"),
            "{line}"
        );
        let members = serde_json::from_str::<Members>(line).unwrap().0;
        let names: Vec<&str> = members.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, keys, "{line}");
        for (key, value) in &members[..] {
            let numeric = matches!(key.as_str(), "customer_id" | "user_id");
            assert_eq!(value.get().starts_with('"'), !numeric, "{key} in {line}");
        }
        let raw = |k: usize| serde_json::from_str::<String>(members[k].1.get()).unwrap();
        let (ip, email) = (raw(5), raw(6));
        assert!(
            ip.starts_with("10.") || ip.starts_with("172.") || ip.starts_with("192.168."),
            "{ip}"
        );
        assert!(email.contains("@example."), "{email}");
        let id = uuid::Uuid::parse_str(&raw(0)).unwrap();
        assert_eq!(id.get_version_num(), 4);
        let event_type = raw(4);
        *types.entry(event_type.clone()).or_default() += 1;
        let fired_at = NaiveDateTime::parse_from_str(&raw(2), "%m/%d/%Y, %H:%M:%S").unwrap();
        assert!(
            previous.is_none_or(|p| p <= fired_at),
            "time order at {line}"
        );
        previous = Some(fired_at);
        let user_id: u64 = members[3].1.get().parse().unwrap();
        let customer_id: u64 = members[1].1.get().parse().unwrap();
        let contact = user_contact
            .entry(user_id)
            .or_insert((ip.clone(), email.clone()));
        assert_eq!(*contact, (ip, email), "one ip and email per user");
        assert!(
            seen.insert((raw(0), event_type.clone())),
            "(id, type) unique"
        );
        let event = Loaded {
            event_id: raw(0),
            customer_id,
            fired_at,
            user_id,
            event_type: event_type.clone(),
        };
        match event_type.as_str() {
            "ReferralPageLoad" => {
                page_loads.insert(event.event_id.clone(), event);
            }
            "ReferralRecommendClick" | "FaqClick" => {
                let page_load = &page_loads[&event.event_id];
                assert_eq!(page_load.customer_id, customer_id);
                assert_eq!(page_load.user_id, user_id);
                let gap = (fired_at - page_load.fired_at).num_seconds();
                assert!((6..=600).contains(&gap), "gap {gap}");
                follow_ups += 1;
                within_300 += u64::from(gap <= 300);
            }
            "EMPTY_VALUE" => assert!(!page_loads.contains_key(&event.event_id)),
            other => panic!("type {other}"),
        }
    }
    let n = stats.lines as f64;
    for (name, share) in [
        ("ReferralPageLoad", 0.749),
        ("ReferralRecommendClick", 0.084),
        ("FaqClick", 0.083),
        ("EMPTY_VALUE", 0.083),
    ] {
        let got = types[name] as f64 / n;
        assert!((got - share).abs() < 0.02, "{name}: {got}");
    }
    let half = within_300 as f64 / follow_ups as f64;
    assert!((0.4..0.6).contains(&half), "within 300 s: {half}");
    assert!(user_contact.len() <= 99 && user_contact.len() > 90);
    assert_outcomes(&stats, &bytes);
    assert_eq!(
        stats.dirty_by_reason["unknown_event_type"],
        types["EMPTY_VALUE"]
    );
}

#[test]
fn first_line_has_the_real_layout() {
    let (bytes, _) = run(&GenerateOptions {
        customers: 1,
        users: 1,
        ..opts(1, 5)
    });
    let line = std::str::from_utf8(&bytes).unwrap();
    let id = &line[13..49];
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    let (ip, email) = (v["ip"].as_str().unwrap(), v["email"].as_str().unwrap());
    let user_id = v["user_id"].as_u64().unwrap();
    let kind = if line.contains("EMPTY_VALUE") {
        "EMPTY_VALUE"
    } else {
        "ReferralPageLoad"
    };
    assert_eq!(
        line,
        format!(
            "{{\"event_id\":\"{id}\",\"customer_id\":12,\"fired_at\":\"01\\/01\\/2022, 00:00:00\",\
             \"user_id\":{user_id},\"event_type\":\"{kind}\",\"ip\":\"{ip}\",\"email\":\"{email}\"}}\n"
        )
    );
}

#[test]
fn events_per_hour_sets_the_time_span() {
    let (bytes, _) = run(&GenerateOptions {
        events_per_hour: 1_000.0,
        ..opts(48_000, 4)
    });
    let lines = split(&bytes);
    let fired_at = |l: &[u8]| {
        let v: serde_json::Value = serde_json::from_slice(l).unwrap();
        NaiveDateTime::parse_from_str(v["fired_at"].as_str().unwrap(), "%m/%d/%Y, %H:%M:%S")
            .unwrap()
    };
    let hours =
        (fired_at(lines[lines.len() - 1]) - fired_at(lines[0])).num_seconds() as f64 / 3600.0;
    assert!((46.0..50.0).contains(&hours), "{hours} hours");
}

#[test]
fn late_lines_are_the_only_ones_out_of_order() {
    let options = GenerateOptions {
        late_rate: 0.05,
        ..opts(20_000, 12)
    };
    let (bytes, stats) = run(&options);
    let mut max: Option<NaiveDateTime> = None;
    let mut out_of_order = 0;
    for line in split(&bytes) {
        let Outcome::Event(e) = classify(line) else {
            continue;
        };
        match max {
            Some(m) if e.fired_at < m => {
                out_of_order += 1;
                assert!(
                    (m - e.fired_at).num_seconds() <= 300,
                    "at most 5 minutes late"
                );
            }
            _ => max = Some(e.fired_at),
        }
    }
    assert!(out_of_order > 0);
    assert!(
        out_of_order <= stats.late_events,
        "{out_of_order} > {}",
        stats.late_events
    );
    assert!(stats.late_events as f64 > 0.03 * stats.lines as f64);
    assert_outcomes(&stats, &bytes);
}

/// Issue 13: the realistic mix is one definition, and half of its late lines are 1–7 days late.
#[test]
fn the_realistic_mix_has_every_kind_of_dirt_and_days_late_lines() {
    let realistic = Mix::Realistic.options();
    assert_eq!(
        (
            realistic.dirt_rate,
            realistic.exact_duplicate_rate,
            realistic.conflicting_resend_rate,
            realistic.late_rate,
            realistic.days_late_share
        ),
        (0.01, 0.005, 0.001, 0.01, 0.5)
    );
    assert_eq!(Mix::Clean.options(), GenerateOptions::default());
    // 200 events per hour over 20,000 lines: about four days, so days-late lines show up.
    let options = GenerateOptions {
        lines: 20_000,
        seed: 13,
        events_per_hour: 200.0,
        late_rate: 0.05,
        ..realistic
    };
    let (bytes, stats) = run(&options);
    let mut max: Option<NaiveDateTime> = None;
    let (mut minutes_late, mut days_late) = (0, 0);
    for line in split(&bytes) {
        let Outcome::Event(e) = classify(line) else {
            continue;
        };
        match max {
            Some(m) if e.fired_at < m => {
                let late = (m - e.fired_at).num_seconds();
                assert!(late <= 7 * 86_400, "at most 7 days late, got {late} s");
                if late > 86_400 - 600 {
                    days_late += 1;
                } else {
                    minutes_late += 1;
                }
            }
            _ => max = Some(e.fired_at),
        }
    }
    assert!(
        days_late > 0 && minutes_late > 0,
        "{days_late} {minutes_late}"
    );
    assert!(stats.exact_duplicates > 0 && stats.conflicting_resends > 0 && stats.rejected() > 0);
    assert_outcomes(&stats, &bytes);
}

#[test]
fn dirt_produces_every_kind_and_each_line_gets_its_intended_outcome() {
    let options = GenerateOptions {
        dirt_rate: 0.2,
        ..opts(5_000, 13)
    };
    let (bytes, stats) = run(&options);
    assert!(stats.blank > 0);
    for (reason, count) in &stats.dirty_by_reason {
        assert!(*count > 0, "no {reason}");
    }
    let dirty = stats.blank + stats.rejected() - stats.dirty_by_reason["unknown_event_type"];
    assert!((700..1_300).contains(&dirty), "{dirty} dirty lines");
    assert!(bytes.windows(2).any(|w| w == b"\r\n"), "some CRLF endings");
    assert_outcomes(&stats, &bytes);
}

#[test]
fn all_kinds_together_match_a_reference_classifier() {
    for seed in 0..4 {
        let options = GenerateOptions {
            seed,
            ..all_rates()
        };
        let (bytes, stats) = run(&options);
        assert!(stats.exact_duplicates > 0 && stats.conflicting_resends > 0);
        assert_outcomes(&stats, &bytes);
    }
}

#[test]
fn exact_duplicates_repeat_an_earlier_line_and_resends_differ() {
    let options = GenerateOptions {
        exact_duplicate_rate: 0.05,
        conflicting_resend_rate: 0.05,
        ..opts(10_000, 14)
    };
    let (bytes, stats) = run(&options);
    let mut seen: HashSet<&[u8]> = HashSet::new();
    let mut repeated = 0;
    for line in split(&bytes) {
        if !seen.insert(line) {
            repeated += 1;
        }
    }
    assert_eq!(repeated, stats.exact_duplicates);
    assert!(
        stats.exact_duplicates > 300 && stats.conflicting_resends > 300,
        "{stats:?}"
    );
    // The loader's view: resends share id and type with an earlier line but differ.
    assert_outcomes(&stats, &bytes);
}

#[test]
fn skewed_customers_follow_zipf_shares_and_no_skew_keeps_the_old_bytes() {
    let options = GenerateOptions {
        customers: 1_000,
        users: 100_000,
        ..opts(60_000, 21)
    };
    let (even, _) = run(&options);
    let (skewed, stats) = run(&GenerateOptions {
        customer_skew: 1.1,
        ..options.clone()
    });
    assert_outcomes(&stats, &skewed);
    let lines_per_customer = |bytes: &[u8]| {
        let mut counts: HashMap<u64, u64> = HashMap::new();
        for line in split(bytes) {
            if let Ok(v) = serde_json::from_slice::<serde_json::Value>(line) {
                if let Some(customer) = v["customer_id"].as_u64() {
                    *counts.entry(customer).or_default() += 1;
                }
            }
        }
        counts
    };
    let counts = lines_per_customer(&skewed);
    let total: u64 = counts.values().sum();
    // The first customer (id 12) gets 1 / H(1000, 1.1) ≈ 17.9 % of the lines.
    let first = counts[&12] as f64 / total as f64;
    assert!(
        (0.16..0.20).contains(&first),
        "first customer's share {first}"
    );
    let even_counts = lines_per_customer(&even);
    let even_first = even_counts[&12] as f64 / even_counts.values().sum::<u64>() as f64;
    assert!(
        even_first < 0.01,
        "even first customer's share {even_first}"
    );
    // Skew 0 draws customers as before the option existed: the bytes of `generate --lines 2000
    // --seed 5` are those of the build without it.
    let (unskewed, _) = run(&GenerateOptions {
        lines: 2_000,
        seed: 5,
        ..GenerateOptions::default()
    });
    assert_eq!(
        blake3::hash(&unskewed).to_hex().as_str(),
        "ef229a124ade5a068a0091c71cf4b8c9de690ddb480983a87b06f41277483534"
    );
}

#[test]
fn many_users_and_customers() {
    let (bytes, stats) = run(&GenerateOptions {
        users: 5_000,
        customers: 20,
        ..opts(20_000, 15)
    });
    let mut users = HashMap::new();
    let mut customers = HashSet::new();
    for line in split(&bytes) {
        let v: serde_json::Value = serde_json::from_slice(line).unwrap();
        let contact = (v["ip"].to_string(), v["email"].to_string());
        assert_eq!(
            *users
                .entry(v["user_id"].as_u64().unwrap())
                .or_insert(contact.clone()),
            contact
        );
        customers.insert(v["customer_id"].as_u64().unwrap());
    }
    assert!(users.len() > 4_000, "{}", users.len());
    assert_eq!(customers.len(), 20);
    assert_outcomes(&stats, &bytes);
    // Above the cache size users are rendered on the fly; dirt edits rely on the same spans.
    let (bytes, stats) = run(&GenerateOptions {
        users: 200_000,
        dirt_rate: 0.3,
        ..opts(5_000, 16)
    });
    assert_outcomes(&stats, &bytes);
    let (clean, _) = run(&GenerateOptions {
        users: 200_000,
        ..opts(2_000, 16)
    });
    let keys = [
        "event_id",
        "customer_id",
        "fired_at",
        "user_id",
        "event_type",
        "ip",
        "email",
    ];
    for line in split(&clean) {
        let members = serde_json::from_slice::<Members>(line).unwrap().0;
        assert!(members.iter().map(|(k, _)| k.as_str()).eq(keys));
    }
    let ids: HashSet<u64> = (0..100_000)
        .map(|i| Population::new(1, 100_000, 9).user_id(i))
        .collect();
    assert_eq!(ids.len(), 100_000);
}

#[test]
fn out_of_range_options_are_refused() {
    let bad = [
        GenerateOptions {
            users: 0,
            ..opts(1, 0)
        },
        GenerateOptions {
            customers: 0,
            ..opts(1, 0)
        },
        GenerateOptions {
            events_per_hour: 0.0,
            ..opts(1, 0)
        },
        GenerateOptions {
            events_per_hour: f64::NAN,
            ..opts(1, 0)
        },
        GenerateOptions {
            dirt_rate: 1.5,
            ..opts(1, 0)
        },
        GenerateOptions {
            late_rate: -0.1,
            ..opts(1, 0)
        },
        GenerateOptions {
            dirt_rate: 0.6,
            exact_duplicate_rate: 0.6,
            ..opts(1, 0)
        },
    ];
    for options in bad {
        let err = generate(&options, &mut Vec::new()).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    }
    let all_dirt = GenerateOptions {
        dirt_rate: 1.0,
        ..opts(2_000, 0)
    };
    let (bytes, stats) = run(&all_dirt);
    assert_eq!(stats.clean_events, 0);
    assert_outcomes(&stats, &bytes);
}

#[test]
fn portable_ln_matches_libm() {
    for i in 0..10_000 {
        let u = f64::from(i) / 10_000.0;
        let want = -(1.0 - u).ln();
        assert!((neg_ln_1m(u) - want).abs() <= 1e-13 * want.max(1.0), "{u}");
    }
    assert_eq!(neg_ln_1m(0.0), 0.0);
    let tiny = 1.0 - f64::EPSILON / 2.0;
    assert!((neg_ln_1m(tiny) - 53.0 * std::f64::consts::LN_2).abs() < 1e-12);
}

#[test]
fn reason_codes_are_the_ingest_codes() {
    let ingest: Vec<&str> = crate::ingest::RejectReason::ALL
        .iter()
        .map(|r| r.code())
        .collect();
    assert_eq!(ingest[0], "line_too_long");
    assert_eq!(&ingest[1..], &DIRTY_REASONS[..]);
}

#[test]
fn serde_json_refuses_what_the_generator_calls_invalid_json() {
    for text in [
        r#"{"a":"\ud800"}"#,
        r#"{"a":"\udc00x"}"#,
        r#"{"a":NaN}"#,
        "[1,2]",
    ] {
        assert!(!matches!(
            serde_json::from_str::<serde_json::Value>(text),
            Ok(serde_json::Value::Object(_))
        ));
    }
}

/// Throughput: `cargo test --release --lib generate::tests::throughput -- --ignored --nocapture`.
#[test]
#[ignore]
fn throughput() {
    for options in [
        opts(1_000_000, 1),
        GenerateOptions {
            lines: 1_000_000,
            ..all_rates()
        },
    ] {
        let mut sink = std::io::BufWriter::with_capacity(1 << 16, std::io::sink());
        let start = std::time::Instant::now();
        let stats = generate(&options, &mut sink).unwrap();
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{} lines, {} bytes in {secs:.3} s: {:.2} M lines/s, {:.0} MB/s (dirt {})",
            stats.lines,
            stats.bytes,
            stats.lines as f64 / secs / 1e6,
            stats.bytes as f64 / secs / 1e6,
            options.dirt_rate,
        );
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]
    #[test]
    fn any_options_keep_the_invariant_and_the_outcomes(
        lines in 0u64..400,
        seed: u64,
        users in 1u32..300,
        customers in 1u32..12,
        dirt in 0.0f64..0.5,
        dup in 0.0f64..0.25,
        resend in 0.0f64..0.25,
        late in 0.0f64..0.3,
        days_late in 0.0f64..1.0,
        eph in 1.0f64..100_000.0,
    ) {
        let options = GenerateOptions {
            lines, seed, users, customers, dirt_rate: dirt, exact_duplicate_rate: dup,
            conflicting_resend_rate: resend, late_rate: late, days_late_share: days_late,
            events_per_hour: eph,
            ..GenerateOptions::default()
        };
        let (bytes, stats) = run(&options);
        proptest::prop_assert!(invariant_holds(&stats));
        proptest::prop_assert_eq!(stats.lines, lines);
        if lines > 0 {
            let expected = GenerateStats { late_events: stats.late_events, ..expected_stats(&bytes) };
            proptest::prop_assert_eq!(stats, expected);
        }
    }
}
