//! Attribute matching of PS3.4 C.2.2.2 on text values, as a worklist SCP needs it: no I/O,
//! no DICOM objects, only the query's value and the item's.
//!
//! * universal matching (C.2.2.2.3): an empty query value matches everything;
//! * single value matching (C.2.2.2.1): equal values; for PN case-insensitive and component
//!   by component, so `DOE^JOHN` finds `Doe^John^Q` (as dcm4chee-arc does);
//! * wildcard matching (C.2.2.2.4): `*` any run of characters, `?` one character; for PN
//!   case-insensitive;
//! * range matching (C.2.2.2.5) of DA and TM: `a-b`, `-b`, `a-`, both ends included; an item
//!   without a value is in no range;
//! * a list of UIDs (C.2.2.2.2) is a single value per UID: any equal one matches.
//!
//! Values with no wildcard of a key that cannot hold one (DA, TM, UI) never reach the
//! wildcard rule.

/// One condition of a query on one attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Universal,
    Single(String),
    Wildcard(String),
    /// Both ends included; `None` is open.
    Range(Option<String>, Option<String>),
    Uids(Vec<String>),
}

/// The kind of matching an attribute's VR allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Text,
    PersonName,
    Date,
    Time,
    Uid,
}

impl Condition {
    /// The condition a query value (padding removed) states for an attribute of `kind`.
    pub fn parse(value: &str, kind: Kind) -> Condition {
        let value = value.trim_matches([' ', '\0']);
        if value.is_empty() || (value == "*" && !matches!(kind, Kind::Date | Kind::Time | Kind::Uid)) {
            return Condition::Universal;
        }
        match kind {
            Kind::Date | Kind::Time => match value.split_once('-') {
                Some((a, b)) => Condition::Range(some(a, kind), some(b, kind)),
                None => Condition::Single(normalise(value, kind)),
            },
            Kind::Uid => Condition::Uids(value.split('\\').map(|u| u.trim().to_owned()).collect()),
            Kind::Text | Kind::PersonName if value.contains(['*', '?']) => Condition::Wildcard(value.to_owned()),
            Kind::Text | Kind::PersonName => Condition::Single(value.to_owned()),
        }
    }

    /// Whether an item's value (`None`: the item has none) meets the condition.
    pub fn matches(&self, kind: Kind, value: Option<&str>) -> bool {
        let Some(value) = value.filter(|v| !v.is_empty()) else { return *self == Condition::Universal };
        match self {
            Condition::Universal => true,
            Condition::Single(want) if kind == Kind::PersonName => same_name(want, value),
            Condition::Single(want) if matches!(kind, Kind::Date | Kind::Time) => normalise(value, kind) == *want,
            Condition::Single(want) => want == value,
            Condition::Wildcard(pattern) if kind == Kind::PersonName => {
                glob(&pattern.to_lowercase(), &value.to_lowercase())
            }
            Condition::Wildcard(pattern) => glob(pattern, value),
            Condition::Range(from, to) => {
                let v = normalise(value, kind);
                from.as_deref().is_none_or(|f| v.as_str() >= f) && to.as_deref().is_none_or(|t| within_to(&v, t, kind))
            }
            Condition::Uids(uids) => uids.iter().any(|u| u == value),
        }
    }
}

fn some(end: &str, kind: Kind) -> Option<String> {
    let end = end.trim();
    (!end.is_empty()).then(|| normalise(end, kind))
}

/// Times compare as text once their colons (ACR-NEMA `HH:MM:SS`) are gone; dates have dots
/// removed (`YYYY.MM.DD`).
fn normalise(value: &str, kind: Kind) -> String {
    match kind {
        Kind::Time => value.chars().filter(|c| *c != ':').collect(),
        Kind::Date => value.chars().filter(|c| *c != '.').collect(),
        _ => value.to_owned(),
    }
}

/// The upper end of a range includes everything it names: `-1200` includes `120030`.
fn within_to(value: &str, to: &str, kind: Kind) -> bool {
    if kind == Kind::Time && value.len() > to.len() {
        return &value[..to.len()] <= to;
    }
    value <= to
}

/// PN single value matching: each component the query gives equals the item's, ignoring case.
fn same_name(want: &str, value: &str) -> bool {
    let have: Vec<&str> = value.split('^').collect();
    want.split('^').enumerate().all(|(i, w)| {
        w.is_empty() || have.get(i).is_some_and(|h| h.eq_ignore_ascii_case(w) || h.to_lowercase() == w.to_lowercase())
    })
}

/// `*` and `?` wildcard matching: the two-pointer algorithm with one backtrack point, no
/// recursion, at most pattern × text steps.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
#[path = "matching_tests.rs"]
mod tests;
