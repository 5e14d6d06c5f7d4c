//! The key store on disk: permissions, atomic versioned files, refusal of newer
//! formats, corrupt files named without hiding the rest, and concurrent writers.

mod common;

use std::os::unix::fs::PermissionsExt;

use common::TempDir;
use tpmkey::store::{
    KeyRecord, SrkRecord, Store, StoreError, StoreRecord, TokenRecord, WrappedRecord,
    FORMAT_VERSION,
};

fn key(id: &str) -> KeyRecord {
    KeyRecord {
        version: FORMAT_VERSION,
        label: format!("key-{id}"),
        id: id.into(),
        algorithm: "ecc256".into(),
        blob: WrappedRecord {
            private: "00".into(),
            public: "11".into(),
        },
        imported: false,
        created: 1,
        empty_auth: false,
        cka_id: None,
    }
}

fn token(label: &str) -> TokenRecord {
    TokenRecord {
        version: FORMAT_VERSION,
        label: label.into(),
        no_pin: true,
        user_seal: None,
        so_seal: None,
        user_seal_handle: None,
        pending_seal_handle: None,
        created: 1,
        user_pin_failures: 0,
        so_pin_failures: 0,
    }
}

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn round_trip_and_permissions() {
    let dir = TempDir::new("store");
    let root = dir.path().join("s");
    let store = Store::open(&root).unwrap();
    assert_eq!(mode(&root), 0o700);
    let rec = StoreRecord {
        version: FORMAT_VERSION,
        srk: Some(SrkRecord {
            kind: "ecc".into(),
            name: "000b00".into(),
            persistent: false,
            public: None,
        }),
        tpm: None,
        algorithms: None,
        lockout: None,
    };
    store.write_record(&rec).unwrap();
    assert_eq!(store.read_record().unwrap(), rec);
    assert_eq!(mode(&root.join("store.json")), 0o600);
    store.create_token(&token("ssh")).unwrap();
    store.write_key("ssh", &key("01")).unwrap();
    store.write_key("ssh", &key("02")).unwrap();
    assert_eq!(mode(&root.join("tokens/ssh/keys/01.json")), 0o600);
    assert_eq!(mode(&root.join("tokens/ssh")), 0o700);
    assert_eq!(store.token_labels().unwrap(), vec!["ssh".to_string()]);
    let (keys, bad) = store.read_keys("ssh").unwrap();
    assert_eq!(keys, vec![key("01"), key("02")]);
    assert!(bad.is_empty());
    store.remove_key("ssh", "01").unwrap();
    assert_eq!(store.read_keys("ssh").unwrap().0.len(), 1);
    store.remove_token("ssh").unwrap();
    assert!(store.token_labels().unwrap().is_empty());
    // No temp files are left behind.
    let leftovers: Vec<_> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty());
}

#[test]
fn newer_format_is_refused_and_left_untouched() {
    let dir = TempDir::new("store");
    let root = dir.path().join("s");
    std::fs::create_dir_all(&root).unwrap();
    let future = r#"{"version": 2, "srk": {"kind": "ml-kem", "name": "zz"}, "extra": true}"#;
    std::fs::write(root.join("store.json"), future).unwrap();
    let e = Store::open(&root).unwrap_err();
    assert!(matches!(e, StoreError::TooNew { found: 2, .. }), "{e:?}");
    assert!(
        e.to_string().contains("store.json") && e.to_string().contains("newer tpmkey"),
        "{e}"
    );
    assert_eq!(
        std::fs::read_to_string(root.join("store.json")).unwrap(),
        future
    );
}

#[test]
fn corrupt_files_are_named_and_do_not_hide_the_rest() {
    let dir = TempDir::new("store");
    let store = Store::open(dir.path().join("s")).unwrap();
    store.create_token(&token("a")).unwrap();
    store.create_token(&token("b")).unwrap();
    store.write_key("a", &key("01")).unwrap();
    store.write_key("a", &key("02")).unwrap();
    // Truncate one key file and one token file.
    let k2 = store.root().join("tokens/a/keys/02.json");
    let text = std::fs::read(&k2).unwrap();
    std::fs::write(&k2, &text[..text.len() / 2]).unwrap();
    std::fs::write(
        store.root().join("tokens/b/token.json"),
        b"{\"version\": 1, \"lab",
    )
    .unwrap();
    let (keys, bad) = store.read_keys("a").unwrap();
    assert_eq!(keys, vec![key("01")]);
    assert_eq!(bad.len(), 1);
    assert!(
        bad[0].to_string().contains("02.json") && bad[0].to_string().contains("corrupt"),
        "{}",
        bad[0]
    );
    assert!(store.read_token("a").is_ok());
    let e = store.read_token("b").unwrap_err();
    assert!(e.to_string().contains("tokens/b/token.json"), "{e}");
}

#[test]
fn names_cannot_escape_the_store() {
    let dir = TempDir::new("store");
    let store = Store::open(dir.path().join("s")).unwrap();
    for bad in ["../x", "a/b", ".hidden", "", &"x".repeat(65)] {
        assert!(
            matches!(
                store.create_token(&token(bad)).unwrap_err(),
                StoreError::BadName { .. }
            ),
            "{bad:?}"
        );
    }
    assert!(store.write_key("ok", &key("../../etc")).is_err());
}

#[test]
fn concurrent_writers_keep_every_key() {
    // Several threads, each with its own Store handle, add keys at once under the
    // lock; every key is there afterwards.
    let dir = TempDir::new("store");
    let root = dir.path().join("s");
    Store::open(&root)
        .unwrap()
        .create_token(&token("t"))
        .unwrap();
    let handles: Vec<_> = (0..8)
        .map(|i| {
            let root = root.clone();
            std::thread::spawn(move || {
                let store = Store::open(&root).unwrap();
                for j in 0..10 {
                    let _lock = store.lock().unwrap();
                    store
                        .write_key("t", &key(&format!("{i:02x}{j:02x}")))
                        .unwrap();
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let (keys, bad) = Store::open(&root).unwrap().read_keys("t").unwrap();
    assert_eq!(keys.len(), 80);
    assert!(bad.is_empty());
}

#[test]
fn sweep_removes_what_killed_writers_left_and_nothing_else() {
    let dir = TempDir::new("store");
    let store = Store::open(dir.path().join("s")).unwrap();
    store.create_token(&token("a")).unwrap();
    store.write_key("a", &key("01")).unwrap();
    let root = store.root().to_path_buf();
    let leftovers = [
        root.join("tokens/.new-b-1-0"),
        root.join("tokens/.rm-c-2-0"),
        root.join(".store.json.tmp-3-0"),
        root.join("tokens/a/.token.json.tmp-4-0"),
        root.join("tokens/a/keys/.01.json.tmp-5-0"),
    ];
    std::fs::create_dir_all(leftovers[0].join("keys")).unwrap();
    std::fs::create_dir_all(&leftovers[1]).unwrap();
    for f in &leftovers[2..] {
        std::fs::write(f, b"{").unwrap();
    }
    let lock = store.lock().unwrap();
    store.sweep(&lock);
    for l in &leftovers {
        assert!(!l.exists(), "{} left", l.display());
    }
    assert_eq!(store.token_labels().unwrap(), vec!["a".to_string()]);
    assert_eq!(store.read_keys("a").unwrap().0, vec![key("01")]);
    assert!(store.read_token("a").is_ok());
}
