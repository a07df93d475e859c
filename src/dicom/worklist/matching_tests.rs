use super::*;

fn matches(query: &str, kind: Kind, value: Option<&str>) -> bool {
    Condition::parse(query, kind).matches(kind, value)
}

#[test]
fn an_empty_value_or_a_lone_star_matches_everything_even_items_without_a_value() {
    for q in ["", "  ", "*"] {
        assert!(matches(q, Kind::Text, Some("CT")));
        assert!(matches(q, Kind::Text, None));
    }
    assert!(matches("", Kind::Date, None));
}

#[test]
fn single_values_match_exactly_and_names_ignore_case_component_by_component() {
    assert!(matches("CT", Kind::Text, Some("CT")));
    assert!(!matches("CT", Kind::Text, Some("ct")), "CS and LO match case-sensitively");
    assert!(!matches("CT", Kind::Text, None));
    assert!(matches("DOE^JOHN", Kind::PersonName, Some("Doe^John^Q")));
    assert!(matches("doe", Kind::PersonName, Some("Doe^John")));
    assert!(matches("müller^jürgen", Kind::PersonName, Some("MÜLLER^JÜRGEN")));
    assert!(!matches("Doe^Jane", Kind::PersonName, Some("Doe^John")));
}

#[test]
fn wildcards_match_runs_and_single_characters() {
    assert!(matches("AC*", Kind::Text, Some("ACC5001")));
    assert!(matches("ACC500?", Kind::Text, Some("ACC5001")));
    assert!(!matches("ACC50?", Kind::Text, Some("ACC5001")));
    assert!(matches("*50*1", Kind::Text, Some("ACC5001")));
    assert!(matches("do*^j*", Kind::PersonName, Some("Doe^John")));
    assert!(matches("*JOHN*", Kind::PersonName, Some("Doe^John")));
    assert!(!matches("Smi*", Kind::PersonName, Some("Doe^John")));
}

#[test]
fn date_and_time_ranges_include_both_ends_and_open_ends() {
    assert!(matches("20261201-20261231", Kind::Date, Some("20261215")));
    assert!(matches("20261201-20261231", Kind::Date, Some("20261231")));
    assert!(!matches("20261201-20261231", Kind::Date, Some("20270101")));
    assert!(matches("-20261215", Kind::Date, Some("20261215")));
    assert!(matches("20261215-", Kind::Date, Some("20991231")));
    assert!(!matches("20261215-", Kind::Date, None), "no value is in no range");
    assert!(matches("20261215", Kind::Date, Some("2026.12.15")));
    assert!(matches("0800-1200", Kind::Time, Some("120030")), "the upper end includes its minute");
    assert!(matches("08:00-12:00", Kind::Time, Some("0930")));
    assert!(!matches("0800-1200", Kind::Time, Some("1201")));
}

#[test]
fn a_uid_list_matches_any_of_its_uids() {
    assert!(matches("1.2.3\\1.2.4", Kind::Uid, Some("1.2.4")));
    assert!(!matches("1.2.3\\1.2.4", Kind::Uid, Some("1.2.5")));
}

#[test]
fn glob_backtracks_without_recursion_on_hostile_patterns() {
    let text = "a".repeat(10_000);
    let pattern = format!("{}b", "*a".repeat(1000));
    assert!(!glob(&pattern, &text));
}
