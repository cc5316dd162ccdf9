//! Deterministic synthetic dataset generator (the shape of
//! `shared/reference/performance.md` section 4.1), used by `nudge gen`, the
//! demo, tests and benchmarks.
//!
//! Every user is generated from its own seeded random stream (seed, user
//! index), so the output is identical across runs and machines, and any
//! range of users can be generated independently. Per user: one profile
//! (city, country, platform, language, acquisition source, signup date,
//! lifetime value, age, timezone, holdout bucket), a web push subscription for
//! about 40 %, and — for the ~45 % active in the window — sessions of events
//! with view → cart → charge funnels (cart after a view with p = 0.12, charge
//! after a cart with p = 0.30 after an exponential delay of mean 6 minutes).
//! About 31 events per user on average over the window: 1M users ≈ 30M events.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal, Zipf};

use crate::clock::DAY_MS;
use crate::store::props::Value;
use crate::store::record::{Event, ProfileUpdate, Record, Subscription};

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Number of users.
    pub users: u64,
    /// Days of history before `now_ms`.
    pub days: u32,
    /// Random seed.
    pub seed: u64,
    /// The end of the generated window; no event is later.
    pub now_ms: i64,
}

impl DatasetSpec {
    /// `users` users over 30 days ending at 2026-11-01T00:00:00Z, seed 42.
    pub fn new(users: u64) -> Self {
        DatasetSpec { users, days: 30, seed: 42, now_ms: 1_793_491_200_000 }
    }
}

/// The scales of the benchmark plan.
pub const SCALE_TINY_USERS: u64 = 10_000;
/// 1M users, about 30M events.
pub const SCALE_S_USERS: u64 = 1_000_000;
/// 10M users, about 300M events.
pub const SCALE_M_USERS: u64 = 10_000_000;

const NAMED_CITIES: [&str; 12] = [
    "Mumbai",
    "Delhi",
    "Bengaluru",
    "Hyderabad",
    "Chennai",
    "Kolkata",
    "Pune",
    "Ahmedabad",
    "Jaipur",
    "Dubai",
    "London",
    "Singapore",
];
const NAMED_CATEGORIES: [&str; 8] =
    ["Electronics", "Fashion", "Shoes", "Books", "Home", "Beauty", "Toys", "Grocery"];
const COUNTRIES: [&str; 8] = ["IN", "AE", "GB", "SG", "US", "DE", "FR", "AU"];
const TIMEZONES: [&str; 6] = [
    "Asia/Kolkata",
    "Asia/Dubai",
    "Europe/London",
    "Asia/Singapore",
    "America/New_York",
    "Europe/Berlin",
];
const PAYMENT_MODES: [&str; 6] = ["upi", "card", "netbanking", "wallet", "cod", "emi"];
const DEVICES: [&str; 3] = ["mobile", "desktop", "tablet"];
/// Browsing events inside a session and their weights (per mille).
const BROWSE_EVENTS: [(&str, u32); 9] = [
    ("Product Viewed", 380),
    ("Category Viewed", 100),
    ("Search", 90),
    ("Page Viewed", 150),
    ("Wishlist Added", 30),
    ("Notification Clicked", 10),
    ("Push Clicked", 10),
    ("Help Viewed", 20),
    ("Custom", 210),
];
/// Number of rarely used custom event names (Zipf-distributed).
const CUSTOM_EVENTS: u64 = 35;

fn user_rng(spec: &DatasetSpec, index: u64) -> ChaCha8Rng {
    let mixed =
        spec.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03);
    ChaCha8Rng::seed_from_u64(mixed)
}

/// The external id of user `index` (a bijection of the index, so ids are unique
/// but not in signup order).
pub fn user_id(index: u64) -> String {
    let scrambled = (index as u32).wrapping_mul(0x9E37_79B1) ^ 0x5bd1_e995;
    if index > u64::from(u32::MAX) { format!("u_{index:x}") } else { format!("u_{scrambled:08x}") }
}

fn zipf(rng: &mut ChaCha8Rng, n: u64, s: f64) -> u64 {
    Zipf::new(n, s).map(|z| z.sample(rng) as u64).unwrap_or(1)
}

fn city(rank: u64) -> String {
    NAMED_CITIES.get(rank as usize - 1).map_or_else(|| format!("City {rank}"), |c| (*c).to_owned())
}

fn category(rank: u64) -> String {
    NAMED_CATEGORIES
        .get(rank as usize - 1)
        .map_or_else(|| format!("Category {rank}"), |c| (*c).to_owned())
}

fn pick<'a>(rng: &mut ChaCha8Rng, items: &[&'a str]) -> &'a str {
    items[rng.gen_range(0..items.len())]
}

fn civil_date(ts_ms: i64) -> String {
    // Howard Hinnant's days-to-civil algorithm.
    let z = ts_ms.div_euclid(DAY_MS) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Every record of user `index`: profile, maybe a subscription, then events in time order.
pub fn user_records(spec: &DatasetSpec, index: u64) -> Vec<Record> {
    let mut rng = user_rng(spec, index);
    let id = user_id(index);
    let mut records = Vec::new();
    let platform = match rng.gen_range(0..100) {
        0..55 => "android",
        55..85 => "web",
        _ => "ios",
    };
    let signup_ms = spec.now_ms - rng.gen_range(0..730) * DAY_MS;
    let ltv: f64 = LogNormal::new(7.0, 1.2).map(|d| d.sample(&mut rng)).unwrap_or(1000.0);
    let timezone = if rng.gen_bool(0.8) { TIMEZONES[0] } else { pick(&mut rng, &TIMEZONES[1..]) };
    let subscribed = rng.gen_bool(0.4);
    records.push(Record::Profile(ProfileUpdate {
        user_id: id.clone(),
        set: vec![
            ("city".into(), Value::String(city(zipf(&mut rng, 500, 1.1)))),
            ("country".into(), Value::String(pick(&mut rng, &COUNTRIES).into())),
            ("platform".into(), Value::String(platform.into())),
            ("language".into(), Value::String(format!("lang{}", zipf(&mut rng, 30, 1.1)))),
            (
                "acquisition_source".into(),
                Value::String(format!("source{}", rng.gen_range(1..=20))),
            ),
            ("signup".into(), Value::String(civil_date(signup_ms))),
            ("ltv".into(), Value::Number((ltv * 100.0).round() / 100.0)),
            ("age".into(), Value::Number(f64::from(rng.gen_range(18..=70)))),
            ("timezone".into(), Value::String(timezone.into())),
            ("push_subscribed".into(), Value::Bool(subscribed)),
            ("holdout".into(), Value::Number((index * 2_654_435_761 % 100) as f64)),
        ],
        ..Default::default()
    }));
    if subscribed {
        records.push(Record::Subscribe {
            user_id: id.clone(),
            subscription: Subscription {
                endpoint: format!(
                    "https://fcm.googleapis.com/fcm/send/{id}-{:x}",
                    rng.r#gen::<u32>()
                ),
                p256dh: format!("BP{:064x}", rng.r#gen::<u128>()),
                auth: format!("{:022x}", rng.r#gen::<u64>()),
            },
        });
    }
    if !rng.gen_bool(0.45) || spec.days == 0 {
        return records;
    }
    let sessions =
        1 + LogNormal::new(1.2, 1.0).map(|d| d.sample(&mut rng) as u32).unwrap_or(1).min(200);
    let gap = Exp::new(1.0 / 20_000.0).ok();
    let charge_delay = Exp::new(1.0 / 360_000.0).ok();
    let amount = LogNormal::new(1200f64.ln(), 0.8).ok();
    let window_start = spec.now_ms - i64::from(spec.days) * DAY_MS;
    let mut events: Vec<Event> = Vec::new();
    let mut carts = 0u32;
    for _ in 0..sessions {
        let mut ts = window_start + rng.gen_range(0..i64::from(spec.days) * DAY_MS);
        let started = ts;
        let step =
            |rng: &mut ChaCha8Rng| gap.as_ref().map_or(20_000, |g| g.sample(rng) as i64).max(1000);
        events.push(Event::new(id.clone(), "Session Started").at(ts));
        if rng.gen_bool(0.5) {
            ts += 500;
            events.push(
                Event::new(id.clone(), "App Launched")
                    .at(ts)
                    .prop("device", pick(&mut rng, &DEVICES))
                    .prop("utm_campaign", format!("utm_{}", zipf(&mut rng, 10_000, 1.1))),
            );
        }
        for _ in 0..rng.gen_range(3..=15) {
            ts += step(&mut rng);
            let roll = rng.gen_range(0..1000);
            let mut acc = 0;
            let name = BROWSE_EVENTS.iter().find(|(_, w)| {
                acc += w;
                roll < acc
            });
            let name = name.map_or("Custom", |(n, _)| n);
            let event = match name {
                "Product Viewed" => {
                    let product = format!("p{}", zipf(&mut rng, 200_000, 1.1));
                    let price =
                        amount.as_ref().map_or(999.0, |a| (a.sample(&mut rng) as i64) as f64);
                    let cat = category(zipf(&mut rng, 200, 1.0));
                    events.push(
                        Event::new(id.clone(), "Product Viewed")
                            .at(ts)
                            .prop("product_id", product.as_str())
                            .prop("category", cat.as_str())
                            .prop("price", price),
                    );
                    if rng.gen_bool(0.12) {
                        ts += step(&mut rng);
                        carts += 1;
                        let cart_id = format!("c{index:x}-{carts}");
                        let quantity = rng.gen_range(1..=5);
                        events.push(
                            Event::new(id.clone(), "Added To Cart")
                                .at(ts)
                                .prop("product_id", product.as_str())
                                .prop("cart_id", cart_id.as_str())
                                .prop("price", price)
                                .prop("quantity", quantity),
                        );
                        if rng.gen_bool(0.30) {
                            let delay = charge_delay
                                .as_ref()
                                .map_or(360_000, |d| d.sample(&mut rng) as i64);
                            events.push(
                                Event::new(id.clone(), "Charged")
                                    .at(ts + delay.max(1000))
                                    .prop("amount", price * f64::from(quantity))
                                    .prop("order_id", cart_id.as_str())
                                    .prop("payment_mode", pick(&mut rng, &PAYMENT_MODES))
                                    .prop("quantity", quantity),
                            );
                        }
                    }
                    continue;
                }
                "Category Viewed" => Event::new(id.clone(), name)
                    .prop("category", category(zipf(&mut rng, 200, 1.0))),
                "Search" => Event::new(id.clone(), name)
                    .prop("query", format!("q{}", zipf(&mut rng, 5000, 1.1))),
                "Page Viewed" => Event::new(id.clone(), name)
                    .prop("duration_s", rng.gen_range(1..=300))
                    .prop("url", format!("/page/{}", zipf(&mut rng, 1000, 1.1))),
                "Custom" => Event::new(
                    id.clone(),
                    format!("Custom Event {}", zipf(&mut rng, CUSTOM_EVENTS, 1.2)),
                ),
                other => Event::new(id.clone(), other),
            };
            events.push(event.at(ts));
        }
        ts += step(&mut rng);
        events.push(
            Event::new(id.clone(), "Session Ended")
                .at(ts)
                .prop("duration_s", ((ts - started) / 1000) as i32),
        );
    }
    events.retain(|e| e.ts_ms.is_some_and(|t| t <= spec.now_ms));
    events.sort_by_key(|e| e.ts_ms);
    records.extend(events.into_iter().map(Record::Event));
    records
}

/// All records, user by user.
pub fn records(spec: DatasetSpec) -> impl Iterator<Item = Record> {
    (0..spec.users).flat_map(move |i| user_records(&spec, i))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_deterministic_and_shaped_like_the_plan() {
        let spec = DatasetSpec::new(2000);
        let first: Vec<Record> = records(spec).collect();
        let again: Vec<Record> = records(spec).collect();
        assert_eq!(first, again);
        let events: Vec<&Event> = first
            .iter()
            .filter_map(|r| if let Record::Event(e) = r { Some(e) } else { None })
            .collect();
        let per_user = events.len() as f64 / 2000.0;
        assert!((20.0..45.0).contains(&per_user), "{per_user} events per user");
        assert!(
            events.iter().all(|e| e
                .ts_ms
                .is_some_and(|t| t <= spec.now_ms && t > spec.now_ms - 31 * DAY_MS))
        );
        let count = |n: &str| events.iter().filter(|e| e.name == n).count();
        assert!(count("Charged") > 0 && count("Charged") < count("Added To Cart"));
        assert!(count("Added To Cart") < count("Product Viewed"));
        crate::store::record::validate_batch(&first[..100]).expect("generated records are valid");
        assert_eq!(civil_date(1_793_491_200_000), "2026-11-01");
        let ids: std::collections::HashSet<String> = (0..5000).map(user_id).collect();
        assert_eq!(ids.len(), 5000);
    }
}
