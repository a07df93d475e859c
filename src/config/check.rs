//! The problem collector every step of the configuration's reading shares, and the value
//! checks more than one of them uses.

use super::Problem;

/// Collects problems while converting, so all of them are reported at once.
#[derive(Debug, Default)]
pub(super) struct Checker {
    pub(super) problems: Vec<Problem>,
}

impl Checker {
    /// The value, or `None` with the problem recorded under `key`.
    pub(super) fn check<T>(&mut self, key: &str, result: Result<T, String>) -> Option<T> {
        result.map_err(|reason| self.problem(key, reason)).ok()
    }

    /// Records a problem of `key`, unless one is recorded already (a key whose TOML value
    /// was refused takes its default, which must not earn it a second problem).
    pub(super) fn problem(&mut self, key: &str, reason: impl Into<String>) {
        if !self.problems.iter().any(|p| p.key == key) {
            self.problems.push(Problem { key: key.into(), reason: reason.into() });
        }
    }
}

/// AE titles: 1-16 characters of the DICOM default repertoire, no backslash or control
/// characters; leading/trailing spaces are not significant (PS3.5 AE).
pub(super) fn ae_title(value: &str) -> Result<String, String> {
    let trimmed = value.trim();
    let ok =
        !trimmed.is_empty() && trimmed.len() <= 16 && trimmed.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'\\');
    if ok {
        Ok(trimmed.to_owned())
    } else {
        Err(format!("{value:?} is not an AE title (1-16 printable ASCII characters, no backslash)"))
    }
}

/// Every entry of a list checked by `check`, each bad one a problem of `key[index]`.
pub(super) fn each<T>(
    c: &mut Checker,
    key: &str,
    values: &[String],
    check: impl Fn(&str) -> Result<T, String>,
) -> Vec<T> {
    values.iter().enumerate().filter_map(|(i, v)| c.check(&format!("{key}[{i}]"), check(v))).collect()
}
