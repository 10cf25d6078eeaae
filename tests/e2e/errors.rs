//! Failure reporting: store initialisation errors and action errors.

use std::path::Path;

use crate::harness::{run_bare, run_env, Scratch};

#[test]
fn unknown_driver_fails_initialisation_on_stdout() {
    let s = Scratch::new();
    let graph = s.graph().display().to_string();
    let run = s.run_root().display().to_string();
    let o = run_bare(&["--graph", &graph, "--run", &run, "-s", "bogus", "layers"]);
    assert_eq!(o.code, 1);
    assert!(o.out().starts_with("error initializing: "), "{o:?}");
    assert!(o.out().contains("driver not supported"), "{o:?}");
}

/// Upstream's words first, then which configuration file was read for `[plugins]` and how a
/// component driver is registered.
#[test]
fn unknown_driver_says_which_configuration_was_read_and_how_to_register_one() {
    let s = Scratch::new();
    let conf = s.dir().join("storage.toml");
    std::fs::write(&conf, "[storage]\ndriver = \"overlay\"\n").unwrap();
    let graph = s.graph().display().to_string();
    let run = s.run_root().display().to_string();
    let o = run_env(
        &["--graph", &graph, "--run", &run, "-s", "acme", "layers"],
        &[("CONTAINERS_STORAGE_CONF", &conf.display().to_string())],
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert_eq!(o.out().lines().count(), 1, "{o:?}");
    let expected = format!(
        "error initializing: failed to GetDriver graph acme {graph}: driver not supported \
         (configuration file {} has no [plugins.acme]; [plugins.acme] component = \
         \"/path/to/driver.wasm\" in the configuration file registers a component driver)\n",
        conf.display()
    );
    assert_eq!(o.out(), expected);
}

#[test]
fn bad_driver_option_fails_initialisation() {
    let s = Scratch::new();
    let o = s.run(&["--storage-opt", "overlay.bogus=1", "layers"]);
    assert_eq!(o.code, 1);
    assert!(o.out().starts_with("error initializing: "), "{o:?}");
}

#[test]
fn action_errors_are_one_line_on_stderr() {
    let s = Scratch::new();
    let o = s.fails(&["get-names", "nothing-by-that-name"]);
    assert_eq!(o.out(), "");
    assert_eq!(o.stderr.lines().count(), 1, "{o:?}");
}

#[test]
fn unshare_runs_the_command_in_a_new_user_namespace() {
    let s = Scratch::new();
    let ours = std::fs::read_link("/proc/self/ns/user").unwrap();
    // Without subordinate ranges for root, upstream warns (logrus shows warnings) and so do
    // we; nothing else goes to stderr.
    let quiet = |stderr: &str| -> String {
        stderr
            .lines()
            .filter(|l| {
                !crate::harness::log_body(l)
                    .is_some_and(|body| body.starts_with("level=warning msg=\"Found no "))
            })
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let o = s.run(&[
        "unshare",
        "sh",
        "-c",
        "readlink /proc/self/ns/user; cat /proc/self/uid_map; echo $_CONTAINERS_USERNS_CONFIGURED",
    ]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(quiet(&o.stderr), "", "{}", o.stderr);
    let out = o.out();
    let lines: Vec<&str> = out.lines().collect();
    assert_ne!(Path::new(lines[0]), ours.as_path(), "{out}");
    // Our own ID is 0 inside; there is no subordinate range on a bare machine, or more.
    assert_eq!(
        lines[1].split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "1"]
    );
    assert_eq!(lines.last(), Some(&"done"));
    let o = s.fails(&["unshare", "false"]);
    assert_eq!(quiet(&o.stderr), "exit status 1\n");
}
