//! Renders events as compact JSON lines in the real file's layout (key order, `\/` escapes).

use chrono::{Datelike, NaiveDate};
use uuid::Uuid;

/// Event type names; the index is [`Event::kind`].
pub(super) const TYPE_NAMES: [&str; 4] = [
    "ReferralPageLoad",
    "ReferralRecommendClick",
    "FaqClick",
    "EMPTY_VALUE",
];
pub(super) const PAGE_LOAD: u8 = 0;
pub(super) const CLICK: u8 = 1;
pub(super) const FAQ: u8 = 2;
pub(super) const EMPTY_VALUE: u8 = 3;

/// Keys in the order of the real file; the index is the field number used in [`Layout`].
pub(super) const KEYS: [&str; 7] = [
    "event_id",
    "customer_id",
    "fired_at",
    "user_id",
    "event_type",
    "ip",
    "email",
];
pub(super) const F_EVENT_ID: usize = 0;
pub(super) const F_CUSTOMER_ID: usize = 1;
pub(super) const F_FIRED_AT: usize = 2;
pub(super) const F_USER_ID: usize = 3;
pub(super) const F_EVENT_TYPE: usize = 4;
pub(super) const F_IP: usize = 5;
pub(super) const F_EMAIL: usize = 6;

/// The customers of the real file; more customers get ids from 1000 on.
const REAL_CUSTOMER_IDS: [u64; 8] = [12, 29, 32, 54, 126, 176, 343, 344];

const FIRST_NAMES: [&str; 40] = [
    "amy", "angela", "anthony", "brian", "cathy", "daniel", "deborah", "douglas", "emily", "eric",
    "grace", "henry", "jacob", "jennifer", "jessica", "john", "julia", "karen", "kevin", "laura",
    "linda", "lisa", "mark", "mary", "michael", "michelle", "natalie", "olivia", "pamela", "paul",
    "rachel", "raymond", "rebecca", "robin", "sara", "steven", "susan", "thomas", "wesley", "zoe",
];
const LAST_NAMES: [&str; 40] = [
    "adams",
    "anderson",
    "berger",
    "brown",
    "campbell",
    "cisneros",
    "collins",
    "daniels",
    "davis",
    "elliott",
    "ellis",
    "garcia",
    "hall",
    "jensen",
    "johnson",
    "jones",
    "king",
    "larson",
    "lee",
    "martin",
    "martinez",
    "miller",
    "moore",
    "morales",
    "nguyen",
    "parker",
    "riley",
    "russell",
    "sanchez",
    "sandoval",
    "scott",
    "simon",
    "smith",
    "stephens",
    "taylor",
    "vasquez",
    "walker",
    "white",
    "wilkinson",
    "young",
];
const DOMAINS: [&str; 3] = ["example.org", "example.net", "example.com"];

/// One event of the clean stream (also the seed of dirty lines and re-sends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Event {
    pub id: Uuid,
    /// Microseconds since 1970-01-01 00:00:00 UTC; the line shows whole seconds.
    pub time_us: i64,
    /// Customer index, 0..customers.
    pub customer: u32,
    /// User index, 0..users.
    pub user: u32,
    /// Index into [`TYPE_NAMES`].
    pub kind: u8,
}

/// Byte positions of one `"key":value` member in a rendered line.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Span {
    /// The key's opening quote.
    pub key: usize,
    /// The value's first byte (its opening quote for strings).
    pub val: usize,
    /// One past the value's last byte.
    pub end: usize,
}

/// Where the seven members of a rendered line are.
pub(super) type Layout = [Span; 7];

/// splitmix64: a fixed mixing function, so users can be derived from their index.
pub(super) fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Appends the decimal digits of `n`.
pub(super) fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&tmp[i..]);
}

fn push_2(buf: &mut Vec<u8>, n: u32) {
    buf.push(b'0' + (n / 10 % 10) as u8);
    buf.push(b'0' + (n % 10) as u8);
}

/// Users up to this count have their id, ip and email rendered once, up front.
const CACHED_USERS: u32 = 1 << 16;

/// A user's rendered text: the id's digits, then `,"ip":"…","email":"…"`.
#[derive(Debug, Clone)]
struct UserText {
    bytes: Box<[u8]>,
    digits: u8,
    ip: u8,
}

/// The people and companies in the log: everything is derived from indexes and a salt, so
/// with many users memory does not grow with their number (only the first 65,536 are cached).
#[derive(Debug, Clone)]
pub(super) struct Population {
    pub customers: u32,
    pub users: u32,
    salt: u64,
    user_id_stride: u64,
    cache: Vec<UserText>,
}

impl Population {
    pub fn new(customers: u32, users: u32, salt: u64) -> Self {
        // Spread user ids over 1..=9999 like the real file while there is room, else 1..=users.
        let user_id_stride = (9999 / u64::from(users.max(1))).max(1);
        let mut pop = Self {
            customers,
            users,
            salt,
            user_id_stride,
            cache: Vec::new(),
        };
        if users <= CACHED_USERS {
            pop.cache = (0..users)
                .map(|user| {
                    let mut bytes = Vec::with_capacity(64);
                    let (digits, ip) = pop.push_user_text(user, &mut bytes);
                    UserText {
                        bytes: bytes.into_boxed_slice(),
                        digits,
                        ip,
                    }
                })
                .collect();
        }
        pop
    }

    pub fn customer_id(&self, index: u32) -> u64 {
        match REAL_CUSTOMER_IDS.get(index as usize) {
            Some(&id) => id,
            None => 1000 + u64::from(index),
        }
    }

    fn user_hash(&self, index: u32) -> u64 {
        mix(self.salt ^ mix(u64::from(index)))
    }

    /// Distinct for distinct indexes.
    pub fn user_id(&self, index: u32) -> u64 {
        let stride = self.user_id_stride;
        1 + u64::from(index) * stride + self.user_hash(index) % stride
    }

    /// Appends the user's id digits, then `,"ip":"…","email":"…"`; returns the lengths of the
    /// digits and of the ip.
    fn push_user_text(&self, user: u32, buf: &mut Vec<u8>) -> (u8, u8) {
        let start = buf.len();
        push_u64(buf, self.user_id(user));
        let digits = buf.len() - start;
        let h = self.user_hash(user);
        buf.extend_from_slice(b",\"ip\":\"");
        let ip_start = buf.len();
        self.push_ip(buf, h);
        let ip = buf.len() - ip_start;
        buf.extend_from_slice(b"\",\"email\":\"");
        self.push_email(buf, h);
        buf.push(b'"');
        (digits as u8, ip as u8)
    }

    /// Appends the user's ip (a private address) without quotes.
    fn push_ip(&self, buf: &mut Vec<u8>, h: u64) {
        let b = |shift: u32| (h >> shift) & 0xFF;
        match h % 3 {
            0 => {
                buf.extend_from_slice(b"10.");
                push_u64(buf, b(8));
            }
            1 => {
                buf.extend_from_slice(b"172.");
                push_u64(buf, 16 + b(8) % 16);
            }
            _ => buf.extend_from_slice(b"192.168"),
        }
        buf.push(b'.');
        push_u64(buf, b(16));
        buf.push(b'.');
        push_u64(buf, b(24));
    }

    /// Appends the user's email without quotes.
    fn push_email(&self, buf: &mut Vec<u8>, h: u64) {
        let h = h >> 32;
        let first = FIRST_NAMES[(h % 40) as usize].as_bytes();
        let last = LAST_NAMES[(h / 40 % 40) as usize].as_bytes();
        match h / 1600 % 5 {
            0 | 4 => {
                buf.extend_from_slice(first);
                buf.extend_from_slice(last);
            }
            1 => {
                buf.extend_from_slice(last);
                buf.extend_from_slice(first);
            }
            2 => {
                buf.push(first[0]);
                buf.extend_from_slice(last);
            }
            _ => {
                buf.extend_from_slice(first);
                push_2(buf, (h / 8000 % 100) as u32);
            }
        }
        buf.push(b'@');
        buf.extend_from_slice(DOMAINS[(h / 800_000 % 3) as usize].as_bytes());
    }
}

/// Formats `fired_at` as `MM\/DD\/YYYY, HH:MM:SS`, caching the date part of the current day.
#[derive(Debug, Clone)]
pub(super) struct TimeFormatter {
    day: i64,
    prefix: Vec<u8>,
}

impl TimeFormatter {
    pub fn new() -> Self {
        Self {
            day: i64::MIN,
            prefix: Vec::with_capacity(16),
        }
    }

    /// Appends the timestamp (without quotes) of the whole second containing `time_us`.
    pub fn push(&mut self, buf: &mut Vec<u8>, time_us: i64) {
        let secs = time_us.div_euclid(1_000_000);
        let day = secs.div_euclid(86_400);
        if day != self.day {
            self.day = day;
            self.prefix.clear();
            // 719_163 = days from 0001-01-01 to 1970-01-01.
            let date = i32::try_from(day + 719_163)
                .ok()
                .and_then(NaiveDate::from_num_days_from_ce_opt)
                .unwrap_or(NaiveDate::MAX);
            push_2(&mut self.prefix, date.month());
            self.prefix.extend_from_slice(b"\\/");
            push_2(&mut self.prefix, date.day());
            self.prefix.extend_from_slice(b"\\/");
            let year = date.year().clamp(0, 9999) as u32;
            push_2(&mut self.prefix, year / 100);
            push_2(&mut self.prefix, year % 100);
            self.prefix.extend_from_slice(b", ");
        }
        buf.extend_from_slice(&self.prefix);
        let sod = secs.rem_euclid(86_400) as u32;
        push_2(buf, sod / 3600);
        buf.push(b':');
        push_2(buf, sod / 60 % 60);
        buf.push(b':');
        push_2(buf, sod % 60);
    }
}

/// Writes `"key":` (after a comma unless it is the first member) and records where it starts.
fn member(buf: &mut Vec<u8>, span: &mut Span, key: &str, first: bool) {
    if !first {
        buf.push(b',');
    }
    span.key = buf.len();
    buf.push(b'"');
    buf.extend_from_slice(key.as_bytes());
    buf.extend_from_slice(b"\":");
    span.val = buf.len();
}

/// Renders `ev` into `buf` (cleared first) without a line terminator and returns where the
/// members are.
pub(super) fn render(
    pop: &Population,
    times: &mut TimeFormatter,
    ev: &Event,
    buf: &mut Vec<u8>,
) -> Layout {
    let mut l = Layout::default();
    buf.clear();
    buf.push(b'{');

    member(buf, &mut l[F_EVENT_ID], KEYS[F_EVENT_ID], true);
    buf.push(b'"');
    let mut id = [0u8; 36];
    buf.extend_from_slice(ev.id.hyphenated().encode_lower(&mut id).as_bytes());
    buf.push(b'"');
    l[F_EVENT_ID].end = buf.len();

    member(buf, &mut l[F_CUSTOMER_ID], KEYS[F_CUSTOMER_ID], false);
    push_u64(buf, pop.customer_id(ev.customer));
    l[F_CUSTOMER_ID].end = buf.len();

    member(buf, &mut l[F_FIRED_AT], KEYS[F_FIRED_AT], false);
    buf.push(b'"');
    times.push(buf, ev.time_us);
    buf.push(b'"');
    l[F_FIRED_AT].end = buf.len();

    // user_id, then event_type, then the user's ip and email.
    let mut scratch = Vec::new();
    let (text, digits, ip): (&[u8], usize, usize) = match pop.cache.get(ev.user as usize) {
        Some(t) => (&t.bytes, usize::from(t.digits), usize::from(t.ip)),
        None => {
            let (digits, ip) = pop.push_user_text(ev.user, &mut scratch);
            (&scratch, usize::from(digits), usize::from(ip))
        }
    };
    member(buf, &mut l[F_USER_ID], KEYS[F_USER_ID], false);
    buf.extend_from_slice(&text[..digits]);
    l[F_USER_ID].end = buf.len();

    member(buf, &mut l[F_EVENT_TYPE], KEYS[F_EVENT_TYPE], false);
    buf.push(b'"');
    buf.extend_from_slice(TYPE_NAMES[usize::from(ev.kind)].as_bytes());
    buf.push(b'"');
    l[F_EVENT_TYPE].end = buf.len();

    // `,"ip":` is 6 bytes, `,"email":` 9.
    let at = buf.len();
    buf.extend_from_slice(&text[digits..]);
    l[F_IP] = Span {
        key: at + 1,
        val: at + 6,
        end: at + 6 + ip + 2,
    };
    l[F_EMAIL] = Span {
        key: l[F_IP].end + 1,
        val: l[F_IP].end + 9,
        end: buf.len(),
    };
    buf.push(b'}');
    l
}
