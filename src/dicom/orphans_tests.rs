use super::*;

#[test]
fn only_names_of_the_layouts_shape_are_instance_files() {
    assert_eq!(sop_of("1.2.840.113619.2.55.3.1.dead.0123456789abcdef.dcm"), None, "not a UID");
    assert_eq!(sop_of("1.2.840.10008.99.0123456789abcdef.dcm"), Some("1.2.840.10008.99"));
    assert_eq!(sop_of("1.2.3.0123456789abcdef.dcm.part"), None);
    assert_eq!(sop_of("1.2.3.0123456789abcde.dcm"), None, "15 hex digits");
    assert_eq!(sop_of("1.2.3.dcm"), None);
    assert_eq!(sop_of("notes.txt"), None);
}
