use super::*;

#[test]
fn query_string_errors_name_the_parameter_without_axums_wording() {
    let unknown = "Failed to deserialize query string: foo: unknown field `foo`, expected `after` or `limit`";
    assert_eq!(query_problem(unknown), "unknown parameter \"foo\"; this path takes after, limit");
    let many = "Failed to deserialize query string: unknown field `x`, expected one of `a`, `b`, `c`";
    assert_eq!(query_problem(many), "unknown parameter \"x\"; this path takes a, b, c");
    let none = "Failed to deserialize query string: unknown field `x`, there are no fields";
    assert_eq!(query_problem(none), "unknown parameter \"x\"; this path takes no parameters");
    let twice = "Failed to deserialize query string: duplicate field `after`";
    assert_eq!(query_problem(twice), "parameter \"after\" is given more than once");
}
