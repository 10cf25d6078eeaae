//! Failure reporting: store initialisation errors and action errors.

use std::path::Path;

use crate::harness::{
    log_body, overlay_only, reference_binary, run_bare, run_binary_env, run_env, Scratch, STORAGE,
};

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
    // Upstream's log line before it (logrus' form, as upstream 1.60 prints it).
    let logged: Vec<&str> = o.stderr.lines().collect();
    assert_eq!(logged.len(), 1, "{o:?}");
    assert!(
        logged[0].starts_with("time=\"")
            && logged[0].ends_with(&format!(
                "level=error msg=\"Failed to GetDriver graph acme {graph}\""
            )),
        "{o:?}"
    );
}

/// Without a configured driver (a store flag but no `--storage-driver`), the driver is chosen
/// as upstream 1.60 chooses it (`drivers.New`): a driver with state in the graph root first
/// (its failure to start is the answer; vfs only from a configured priority list; state of
/// two makes the user choose), then the priority list, passing over the drivers that cannot
/// run here. Same verdict, same lines, same homes as the reference's.
#[test]
fn without_a_driver_the_choice_and_its_errors_are_upstreams() {
    if !overlay_only("without_a_driver_the_choice_and_its_errors_are_upstreams") {
        return;
    }
    let Some(reference) = reference_binary() else {
        return;
    };
    let cases: [(&[&str], &[&str]); 5] = [
        (&[], &["--storage-opt", "a=b", "layers"]),
        (&["vfs", "btrfs"], &["--storage-opt", "a=b", "layers"]),
        (
            &["vfs", "overlay"],
            &["--storage-opt", "overlay.mountopt=nodev", "layers"],
        ),
        (
            &["vfs"],
            &["--storage-opt", "vfs.ignore_chown_errors=true", "status"],
        ),
        (
            &["vfs"],
            &["--storage-opt", "overlay.mountopt=nodev", "layers"],
        ),
    ];
    for (homes, args) in cases {
        let mut seen = Vec::new();
        for binary in [Path::new(STORAGE), reference.as_path()] {
            let s = Scratch::with_binary(binary, "overlay");
            for home in homes {
                std::fs::create_dir_all(s.graph().join(home)).unwrap();
            }
            let graph = s.graph().display().to_string();
            let run = s.run_root().display().to_string();
            let mut full = vec!["--graph", &graph, "--run", &run];
            full.extend_from_slice(args);
            let o = run_binary_env(binary, &full, &[]);
            // The two stores are in different directories.
            let dir = s.dir().display().to_string();
            let logs: Vec<String> = o
                .stderr
                .lines()
                .map(|l| log_body(l).unwrap_or(l).replace(&dir, "DIR"))
                .collect();
            let mut left: Vec<String> = std::fs::read_dir(s.graph())
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            left.sort();
            seen.push((
                o.code,
                same_order(&o.out()).replace(&dir, "DIR"),
                logs,
                left,
            ));
        }
        assert_eq!(
            seen[0], seen[1],
            "{homes:?} {args:?}: ours, then upstream's"
        );
    }
}

/// Upstream lists the drivers of `several valid graphdrivers: a, b` in Go's map order,
/// which varies: sorted, for comparing.
fn same_order(line: &str) -> String {
    let Some((head, rest)) = line.split_once("graphdrivers: ") else {
        return line.to_string();
    };
    let Some((names, tail)) = rest.split_once(';') else {
        return line.to_string();
    };
    let mut names: Vec<&str> = names.split(", ").collect();
    names.sort_unstable();
    format!("{head}graphdrivers: {};{tail}", names.join(", "))
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
