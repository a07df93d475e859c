//! The sealed-value reader (`zenedge::log::value::decode` on values in the sealed form: header,
//! key lookup, AES-256-GCM) on hostile bytes, and sealing round trips.
//!
//! Input: the first byte picks the mode, the next eight are a sequence number, the rest is
//! either the body of a sealed value as it could be found in the `events` table (mode even: the
//! sealed header's marker and format are put in front, and, when long enough, the id of a real
//! data key is spliced in, so most inputs reach the decryption) or a value to seal (mode odd).
//! Checked for every input:
//! * no panic; a value that does not open is a `ValueFault`;
//! * a forged value never opens (none of these inputs was sealed under the key it names);
//! * what is sealed for a sequence number opens there as what was sealed, and is refused at
//!   any other sequence number and with any one byte after the marker changed.
#![no_main]

use std::sync::{Arc, LazyLock};

use libfuzzer_sys::fuzz_target;
use redb::backends::InMemoryBackend;
use zenedge::config::Site;
use zenedge::log::keys::{KEY_ID_LEN, Keyring, Subject};
use zenedge::log::value::{FORMAT_SEALED, HEADER_LEN, MARK, decode, encode, plain, seal};
use zenedge::log::{MasterKeyFile, open_keys};

/// A database in memory with a keyring under a master key made for this run.
struct Fixture {
    db: Arc<redb::Database>,
    ring: Arc<Keyring>,
    site: Site,
}

static FIXTURE: LazyLock<Fixture> = LazyLock::new(|| {
    let db = Arc::new(redb::Builder::new().create_with_backend(InMemoryBackend::new()).expect("in memory"));
    let dir = std::env::temp_dir().join(format!("zenedge-fuzz-sealed-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let file = MasterKeyFile { path: dir.join("master.key"), create: true };
    let ring = open_keys(&db, &dir.join("zenedge.redb"), &file).expect("keys").expect("a keyring");
    let site = Site { tenant_id: "t".into(), hospital_id: "h".into(), edge_id: "e".into() };
    Fixture { db, ring, site }
});

fuzz_target!(|data: &[u8]| {
    let f = &*FIXTURE;
    if data.len() < 9 {
        return;
    }
    let (mode, seq, rest) = (data[0], u64::from_le_bytes(data[1..9].try_into().unwrap()), &data[9..]);
    let txn = f.db.begin_write().expect("write");
    let (id, key) = f.ring.data_key(&txn, &f.site, Subject::Patient("fuzz")).expect("key").expect("a patient key");
    drop(txn);
    if mode % 2 == 0 {
        let mut stored = vec![MARK, FORMAT_SEALED];
        stored.extend_from_slice(rest);
        refused(seq, &stored);
        if stored.len() >= HEADER_LEN {
            stored[10..10 + KEY_ID_LEN].copy_from_slice(&id);
            refused(seq, &stored);
        }
    } else {
        let inner = encode(rest.to_vec());
        let sealed = seal(seq, &id, &key, &inner).expect("seal");
        let back = decode(seq, &sealed).expect("a sealed value opens where it was sealed");
        assert_eq!(back.as_ref(), rest, "a sealed value opens as something else");
        assert_eq!(plain(&sealed).expect("opens").as_ref(), rest);
        assert!(decode(seq.wrapping_add(1), &sealed).is_err(), "a value opens at another sequence number");
        let mut changed = sealed.clone();
        // Not the marker: without it the bytes are a plain value by design (read as msgpack).
        let at = 1 + (seq as usize) % (changed.len() - 1);
        changed[at] ^= 1 << (mode % 8);
        assert!(decode(seq, &changed).is_err(), "a value with byte {at} changed opens");
    }
});

/// `stored` is refused at `seq` (and read without a sequence number, too), without a panic.
fn refused(seq: u64, stored: &[u8]) {
    match decode(seq, stored) {
        Ok(_) => panic!("a forged sealed value opened"),
        Err(e) => {
            let _ = e.to_string();
        }
    }
    assert!(plain(stored).is_err(), "a forged sealed value opened without a sequence number");
}
