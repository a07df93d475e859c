use redb::TableDefinition;

use super::*;

const BIG: TableDefinition<u64, &[u8]> = TableDefinition::new("big");
const SMALL: TableDefinition<&str, &str> = TableDefinition::new("small");

#[test]
fn every_table_is_listed_with_its_rows_and_bytes_largest_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = redb::Database::create(dir.path().join("t.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut big = txn.open_table(BIG).unwrap();
        for i in 0..200u64 {
            big.insert(i, [7u8; 1000].as_slice()).unwrap();
        }
        let mut small = txn.open_table(SMALL).unwrap();
        small.insert("k", "v").unwrap();
    }
    txn.commit().unwrap();

    let usage = tables(&db).unwrap();
    let names: Vec<_> = usage.iter().map(|t| t.table.as_str()).collect();
    assert_eq!(names, ["big", "small"]);
    assert_eq!((usage[0].rows, usage[1].rows), (200, 1));
    assert!(usage[0].stored_bytes >= 200 * 1008, "keys and values are counted: {:?}", usage[0]);
    assert!(usage[0].leaf_pages >= 200 * 1000 / 4096, "{:?}", usage[0]);

    let text = render(&usage);
    let sum = text.lines().last().unwrap();
    assert!(sum.starts_with("(all tables)") && sum.split_whitespace().nth(2) == Some("201"), "{text}");
}
