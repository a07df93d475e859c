use super::*;

#[test]
fn tls_options_are_taken_out_of_the_url_and_the_rest_kept() {
    let (rest, mode, root) = split_tls_options(
        "postgres://hub@db.example.org:5433/zen?sslmode=verify-full&application_name=x&sslrootcert=%2Fetc%2Fca.pem",
    );
    assert_eq!(rest, "postgres://hub@db.example.org:5433/zen?application_name=x");
    assert_eq!((mode.as_deref(), root.as_deref()), (Some("verify-full"), Some("/etc/ca.pem")));
    let (rest, mode, _) = split_tls_options("host=/run/postgresql dbname=zen sslmode=disable");
    assert_eq!((rest.as_str(), mode.as_deref()), ("host=/run/postgresql dbname=zen", Some("disable")));
}

#[test]
fn verify_full_needs_a_ca_file_and_weaker_modes_are_refused() {
    let url = "postgres://hub@db.example.org/zen?sslmode=verify-full";
    assert!(resolve(&PgSettings::new(url)).unwrap_err().to_string().contains("CA file"));
    let settings = PgSettings { ca_file: Some("/etc/ca.pem".into()), ..PgSettings::new(url) };
    assert_eq!(resolve(&settings).unwrap().tls, PgTlsMode::VerifyFull { ca_file: "/etc/ca.pem".into() });
    for weak in ["require", "prefer", "verify-ca", "allow"] {
        let error = resolve(&PgSettings::new(format!("postgres://h/zen?sslmode={weak}"))).unwrap_err().to_string();
        assert!(error.contains("verify-full"), "{error}");
    }
    let plain = resolve(&PgSettings::new("postgres://127.0.0.1/zen")).unwrap();
    assert_eq!(plain.tls, PgTlsMode::Disable);
    assert!(is_local(&plain.config));
}

#[test]
fn a_url_without_a_database_is_refused_and_no_password_is_ever_shown() {
    let error = resolve(&PgSettings::new("postgres://u:secret@h")).unwrap_err().to_string();
    assert!(error.contains("no database") && !error.contains("secret"), "{error}");
    let error = resolve(&PgSettings::new("postgres://u:secret@h/db?bogus=1")).unwrap_err().to_string();
    assert!(!error.contains("secret"), "{error}");
    assert!(!format!("{:?}", PgSettings::new("postgres://u:secret@h/db")).contains("secret"));
    let resolved = resolve(&PgSettings::new("postgres://u:secret@h:6000/db")).unwrap();
    assert_eq!(describe(&resolved.config), "h:6000/db");
}
