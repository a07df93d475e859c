use super::*;

#[test]
fn a_day_of_minutes_makes_288_points_of_per_second_rates() {
    let mut minutes = vec![0u64; 1440];
    minutes[1439] = 300;
    minutes[0] = 60;
    let r = rates(&minutes);
    assert_eq!(r.len(), 288);
    assert_eq!(r[287], 1.0, "300 in the last 5 minutes: 1 per second");
    assert!((r[0] - 0.2).abs() < 1e-12);
}

#[test]
fn a_quiet_day_is_a_flat_line_with_every_point() {
    let d = path(&rates(&[0; 1440]), 0.0, false);
    assert_eq!(d.matches('L').count(), 287);
    assert!(d.starts_with("M0.0,94.0"), "{d}");
    assert!(d.ends_with("L600.0,94.0"), "{d}");
}

#[test]
fn the_peak_reaches_the_top_of_the_plot() {
    let d = path(&[0.0, 2.0, 1.0], 2.0, false);
    assert_eq!(d, "M0.0,94.0 L300.0,4.0 L600.0,49.0");
    let markup = plot("messages", "HL7 messages", &[120; 1440]).into_string();
    assert!(markup.contains("peak 2.00/s"), "{markup}");
    assert!(markup.contains("data-plot=\"messages\""), "{markup}");
}
