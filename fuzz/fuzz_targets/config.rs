//! The configuration parser (`storage_store::config::parse_config`: `storage.conf` /
//! `storage.toml` text and the `STORAGE_DRIVER` / `STORAGE_OPTS` environment → store
//! options), then what the drivers do with the options it gives (the archive options and
//! their sizes).
//!
//! Checked: no panic; options that parsed serialise as `storage config` prints them; the
//! graph and run roots are never empty; `STORAGE_OPTS` replaces the driver options and
//! `STORAGE_DRIVER` the driver.
//!
//! Input: the text, optionally followed by `\0` and a `STORAGE_DRIVER` value, then `\0` and
//! a `STORAGE_OPTS` value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use storage_driver::archive_runtime::{parse_size, ArchiveSettings};
use storage_store::config::{parse_config, Environment};

struct FuzzEnv<'a> {
    driver: Option<&'a str>,
    opts: Option<&'a str>,
}

impl Environment for FuzzEnv<'_> {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            "STORAGE_DRIVER" => self.driver.map(str::to_string),
            "STORAGE_OPTS" => self.opts.map(str::to_string),
            _ => None,
        }
    }

    // Root's view: the rootless defaults read the process's own user and home, which a
    // fuzzer's input does not describe.
    fn uid(&self) -> u32 {
        0
    }

    fn euid(&self) -> u32 {
        0
    }

    fn passwd_home(&self, _uid: u32) -> Option<std::path::PathBuf> {
        None
    }

    fn can_use_rootless_overlay(&self) -> bool {
        false
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(all) = std::str::from_utf8(data) else {
        return;
    };
    let mut parts = all.splitn(3, '\0');
    let text = parts.next().unwrap_or_default();
    let env = FuzzEnv {
        driver: parts.next(),
        opts: parts.next(),
    };
    let loaded = match parse_config(text, "fuzz.toml", &env) {
        Ok(loaded) => loaded,
        Err(e) => {
            let _ = e.to_string();
            return;
        }
    };
    let opts = &loaded.options;
    assert!(!opts.graph_root.as_os_str().is_empty(), "empty graph root");
    assert!(!opts.run_root.as_os_str().is_empty(), "empty run root");
    if let Some(d) = env.driver.filter(|d| !d.is_empty()) {
        let expected = if d == "overlay2" { "overlay" } else { d };
        assert_eq!(opts.driver_name, expected, "STORAGE_DRIVER not applied");
    }
    if let Some(o) = env.opts {
        let expected: Vec<&str> = o.split(',').filter(|s| !s.is_empty()).collect();
        assert_eq!(opts.driver_options, expected, "STORAGE_OPTS not applied");
    }
    serde_json::to_string(&opts.to_go_json()).expect("options serialise");

    let mut settings = ArchiveSettings::default();
    for option in &opts.driver_options {
        let (key, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
        let name = key
            .rsplit('.')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if let Err(e) = settings.parse_option(&opts.driver_name, &name, value) {
            let _ = e.to_string();
        }
        let _ = parse_size(&opts.driver_name, value);
    }
});
