//! Field paths in the usual HL7 notation (`OBR-18`, `OBR-3.1`, `PID-3.4.2`), used to
//! configure where a site keeps its accession number.
//!
//! A path names a segment, a field, and optionally a component and a subcomponent (both
//! default to 1); it always reads the first repetition and the first segment of that name
//! in whatever scope it is applied to (for accession numbers: the order group).

use std::fmt;
use std::str::FromStr;

/// `SEG-field[.component[.subcomponent]]`, e.g. `OBR-18` or `PID-3.4.2`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct FieldPath {
    /// Three characters: an uppercase letter, then uppercase letters or digits.
    segment: String,
    /// 1-based field position (MSH-1 is the field separator, as in the standard).
    field: usize,
    /// 1-based component position.
    component: usize,
    /// 1-based subcomponent position.
    subcomponent: usize,
}

/// Why a field path could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid HL7 field path {input:?}: {reason}; expected SEGMENT-FIELD[.COMPONENT[.SUBCOMPONENT]], \
     e.g. \"OBR-18\", \"OBR-3.1\" or \"PID-3.4.2\""
)]
pub struct FieldPathError {
    /// The text that was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Positions above this are surely typos (no segment has this many fields).
const MAX_POSITION: usize = 999;

impl FieldPath {
    /// The segment name, e.g. `OBR`.
    pub fn segment(&self) -> &str {
        &self.segment
    }

    /// The 1-based field position.
    pub fn field(&self) -> usize {
        self.field
    }

    /// The 1-based component position (1 when not written).
    pub fn component(&self) -> usize {
        self.component
    }

    /// The 1-based subcomponent position (1 when not written).
    pub fn subcomponent(&self) -> usize {
        self.subcomponent
    }
}

impl FromStr for FieldPath {
    type Err = FieldPathError;

    /// Parses `OBR-18`, `obr-18` (normalised to uppercase), `OBR-3.1`, `PID-3.4.2`.
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let error = |reason| FieldPathError { input: input.to_owned(), reason };
        let (segment, positions) = input.trim().split_once('-').ok_or_else(|| error("missing '-'"))?;
        let segment = segment.to_ascii_uppercase();
        let valid_name = segment.len() == 3
            && segment.starts_with(|c: char| c.is_ascii_uppercase())
            && segment.chars().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid_name {
            return Err(error("the segment name must be 3 letters or digits, starting with a letter"));
        }
        let mut numbers = positions.split('.').map(|n| match n.parse::<usize>() {
            Ok(n) if (1..=MAX_POSITION).contains(&n) => Ok(n),
            _ => Err(error("positions must be whole numbers from 1 to 999")),
        });
        let field = numbers.next().unwrap_or_else(|| Err(error("missing field number")))?;
        let component = numbers.next().transpose()?.unwrap_or(1);
        let subcomponent = numbers.next().transpose()?.unwrap_or(1);
        if numbers.next().is_some() {
            return Err(error("too many positions (at most field.component.subcomponent)"));
        }
        Ok(Self { segment, field, component, subcomponent })
    }
}

impl fmt::Display for FieldPath {
    /// The shortest form: `OBR-18`, `OBR-3.2`, `PID-3.4.2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.segment, self.field)?;
        if self.component != 1 || self.subcomponent != 1 {
            write!(f, ".{}", self.component)?;
        }
        if self.subcomponent != 1 {
            write!(f, ".{}", self.subcomponent)?;
        }
        Ok(())
    }
}

impl TryFrom<String> for FieldPath {
    type Error = FieldPathError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<FieldPath> for String {
    fn from(path: FieldPath) -> String {
        path.to_string()
    }
}

#[cfg(test)]
#[path = "path_tests.rs"]
mod tests;
