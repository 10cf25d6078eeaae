//! Command-line parsing as mflag does it (upstream's `cmd/containers-storage/main.go`).

use crate::harness::{id, run_bare, run_env, Scratch, STORAGE};

#[test]
fn no_command_prints_usage_and_exits_1() {
    let o = run_bare(&[]);
    assert_eq!(o.code, 1);
    assert!(o
        .out()
        .starts_with("Usage: storage command [options [...]]\n\nCommands:\n\n"));
    assert!(o
        .out()
        .contains("  layers                        List layers\n"));
}

#[test]
fn global_parse_error_goes_to_stdout_with_exit_1() {
    let o = run_bare(&["--bogus", "layers"]);
    assert_eq!(o.code, 1);
    assert!(
        o.out()
            .starts_with("flag provided but not defined: --bogus while parsing arguments (1)\nUsage: storage command"),
        "{o:?}"
    );
    assert!(o
        .stderr
        .starts_with("flag provided but not defined: --bogus\nSee 'storage --help'.\n"));
}

#[test]
fn unknown_command_flag_is_125_on_stderr() {
    let s = Scratch::new();
    let o = s.run(&["create-layer", "-x"]);
    assert_eq!(o.code, 125);
    assert_eq!(o.out(), "");
    let mut lines = o.stderr.lines();
    assert_eq!(lines.next(), Some("flag provided but not defined: -x"));
    assert_eq!(lines.next(), Some("See 'storage create-layer --help'."));
    // Nothing after the two lines, as upstream 1.60 (and 1.43).
    assert_eq!(lines.next(), None);
    let o = s.run(&["layers", "--bogus"]);
    assert_eq!(o.code, 125);
    assert!(o
        .stderr
        .starts_with("flag provided but not defined: --bogus\n"));
}

#[test]
fn flag_needing_a_value_at_the_end() {
    let s = Scratch::new();
    let o = s.run(&["create-layer", "-n"]);
    assert_eq!(o.code, 125);
    assert!(
        o.stderr.starts_with("flag needs an argument: -n\n"),
        "{o:?}"
    );
}

#[test]
fn help_after_command_prints_usage_and_exits_125() {
    let s = Scratch::new();
    for help in ["-h", "--help"] {
        let o = s.run(&["layers", help]);
        assert_eq!(o.code, 125, "{help}");
        assert!(o
            .out()
            .starts_with("Usage: storage layers [options [...]]\n\nList layers\n\nOptions:\n"));
    }
}

#[test]
fn unknown_command() {
    let s = Scratch::new();
    let o = s.run(&["frobnicate"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.out(), "frobnicate: unrecognized command.\n");
}

#[test]
fn argument_count_errors() {
    let s = Scratch::new();
    let o = s.fails(&["layer"]);
    assert!(o.out().starts_with("layer: more arguments required.\nUsage: storage layer [options [...]] layerNameOrID [...]\n"));
    let o = s.fails(&["get-names", "a", "b"]);
    assert!(
        o.out()
            .starts_with("get-names: too many arguments ([a b]).\n"),
        "{o:?}"
    );
}

#[test]
fn flags_stop_at_the_first_positional() {
    let s = Scratch::new();
    let l = s.create_layer(&["--id", &id("l1")]);
    // "-j" is a second layer name: text output for the first, exit 1 for the second.
    let o = s.run(&["layer", &l, "-j"]);
    assert_eq!(o.code, 1);
    assert_eq!(o.out(), format!("ID: {l}\n"));
    assert_eq!(o.stderr, "");
}

#[test]
fn global_flags_after_the_command_and_last_value_wins() {
    let s = Scratch::new();
    let other = s.dir().join("other");
    let graph = s.graph().display().to_string();
    let run = s.run_root().display().to_string();
    let o = run_bare(&[
        "--graph",
        &other.display().to_string(),
        "status",
        "-j",
        "--graph",
        &graph,
        "--run",
        &run,
        "--driver",
        "overlay",
    ]);
    assert_eq!(o.code, 0, "{o:?}");
    let pairs = o.json();
    assert_eq!(pairs[0], serde_json::json!(["Root", graph]));
    assert_eq!(pairs[1], serde_json::json!(["Run Root", run]));
    assert_eq!(pairs[2], serde_json::json!(["Driver Name", "overlay"]));
}

#[test]
fn boolean_flags_take_values_with_equals() {
    let s = Scratch::new();
    let o = s.run(&["--debug=false", "layers"]);
    assert_eq!((o.code, o.stderr.as_str()), (0, ""));
    let o = s.run(&["layers", "-j=false"]);
    assert_eq!((o.code, o.out().as_str()), (0, ""));
    let o = s.run(&["-D", "layers"]);
    assert_eq!(o.code, 0);
    assert!(o.stderr.contains("Root: "), "{o:?}");
    let o = s.run(&["layers", "--debug=maybe"]);
    assert_eq!(o.code, 125);
    assert!(
        o.stderr
            .starts_with("invalid boolean value \"maybe\" for  --debug"),
        "{o:?}"
    );
}

#[test]
fn relative_roots_are_made_absolute() {
    let s = Scratch::new();
    let o = std::process::Command::new(STORAGE)
        .current_dir(s.dir())
        .args([
            "--graph", "graph", "--run", "run", "-s", "overlay", "status", "-j",
        ])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let pairs: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(pairs[0][1], s.graph().display().to_string());
    assert_eq!(pairs[1][1], s.run_root().display().to_string());
}

#[test]
fn repeated_list_flags_append() {
    let s = Scratch::new();
    let out = s.ok(&["create-layer", "-n", "one", "--name", "two", "--name=three"]);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(&lines[1..], ["\tone", "\ttwo", "\tthree"]);
}

#[test]
fn status_and_version_text_go_to_stderr() {
    let s = Scratch::new();
    let o = s.run(&["status"]);
    assert_eq!(o.code, 0);
    assert_eq!(o.out(), "");
    assert!(
        o.stderr.starts_with(&format!(
            "Root: {}\nRun Root: {}\nDriver Name: {}\nDriver Options: []\n",
            s.graph().display(),
            s.run_root().display(),
            crate::DRIVER
        )),
        "{o:?}"
    );
    let o = s.run(&["version"]);
    assert_eq!(o.code, 0);
    assert_eq!(o.out(), "");
    assert!(o.stderr.starts_with("Version: "));
    let v = s.run(&["version", "-j"]);
    assert_eq!(v.json()[0][0], "Version");
}

#[test]
fn config_prints_resolved_options_as_json() {
    let s = Scratch::new();
    let conf = s.dir().join("storage.conf");
    std::fs::write(
        &conf,
        "[storage]\ndriver = \"overlay\"\ngraphroot = \"/x/graph\"\nrunroot = \"/x/run\"\n",
    )
    .unwrap();
    let o = s.run(&["config", &conf.display().to_string()]);
    assert_eq!(o.code, 0, "{o:?}");
    let v = o.json();
    assert_eq!(v["driver"], "overlay");
    assert_eq!(v["root"], "/x/graph");
    assert_eq!(v["runroot"], "/x/run");
}

/// Writes a storage.conf for the scratch store's roots.
fn conf_for(s: &Scratch, driver: &str) -> String {
    let conf = s.dir().join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"{driver}\"\ngraphroot = \"{}\"\nrunroot = \"{}\"\n",
            s.graph().display(),
            s.run_root().display()
        ),
    )
    .unwrap();
    conf.display().to_string()
}

#[test]
fn configuration_file_applies_without_store_flags() {
    let s = Scratch::new();
    let conf = conf_for(&s, "overlay");
    let o = run_env(&["status", "-j"], &[("CONTAINERS_STORAGE_CONF", &conf)]);
    assert_eq!(o.code, 0, "{o:?}");
    let pairs = o.json();
    assert_eq!(pairs[0][1], s.graph().display().to_string());
    assert_eq!(pairs[2][1], "overlay");
    // STORAGE_DRIVER overrides the file's driver when the file is used...
    let o = run_env(
        &["layers"],
        &[
            ("CONTAINERS_STORAGE_CONF", &conf),
            ("STORAGE_DRIVER", "bogus"),
        ],
    );
    assert_eq!(o.code, 1, "{o:?}");
    assert!(o.out().starts_with("error initializing: "), "{o:?}");
}

#[test]
fn any_store_flag_ignores_configuration_and_environment() {
    let s = Scratch::new();
    // A configuration naming an unknown driver, and an environment naming another.
    let conf = conf_for(&s, "bogus");
    let graph = s.graph().display().to_string();
    let run = s.run_root().display().to_string();
    let o = run_env(
        &["--graph", &graph, "--run", &run, "status", "-j"],
        &[
            ("CONTAINERS_STORAGE_CONF", &conf),
            ("STORAGE_DRIVER", "bogus"),
            ("STORAGE_OPTS", "bogus.x=1"),
        ],
    );
    assert_eq!(o.code, 0, "{o:?}");
    let pairs = o.json();
    assert_eq!(pairs[2][1], "overlay");
    assert_eq!(pairs[3], serde_json::json!(["Driver Options", "[]"]));
}

/// The commands the reference lists in its usage, in its order.
fn reference_commands(reference: &std::path::Path) -> Vec<String> {
    let (_, text) = printed(std::process::Command::new(reference).arg("--help"));
    text.lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| !l.starts_with("Options:"))
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Runs `cmd` with no input, no driver or configuration file from the environment: its exit
/// status (-1 when killed) and what it printed, stdout then stderr.
fn printed(cmd: &mut std::process::Command) -> (i32, String) {
    let o = cmd
        .env_remove("STORAGE_DRIVER")
        .env_remove("STORAGE_OPTS")
        .env_remove("CONTAINERS_STORAGE_CONF")
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    (o.status.code().unwrap_or(-1), text)
}

/// What a binary prints for `args` on a scratch vfs store, stdout then stderr, with its own
/// name and the store's paths made neutral.
fn said(binary: &std::path::Path, scratch: &Scratch, args: &[&str]) -> (i32, String) {
    let (code, text) = printed(
        std::process::Command::new(binary)
            .arg("--graph")
            .arg(scratch.graph())
            .arg("--run")
            .arg(scratch.run_root())
            .args(["--storage-driver", "vfs"])
            .args(args),
    );
    let text = text
        .replace(&binary.display().to_string(), "PROGRAM")
        .replace(&scratch.graph().display().to_string(), "GRAPH")
        .replace(&scratch.run_root().display().to_string(), "RUN")
        .replace("containers-storage", "PROGRAM")
        .replace("Usage: storage ", "Usage: PROGRAM ")
        .replace("See 'storage ", "See 'PROGRAM ");
    (code, text)
}

/// Every command's usage (`CMD --help`: the usage line, what it does, every flag with its
/// spellings, default and help) and the command list read as upstream 1.60's, byte for byte
/// but for the program's name; the commands that are ours come after upstream's.
#[test]
fn every_usage_text_reads_as_the_references() {
    let Some(reference) = crate::harness::reference_binary() else {
        return;
    };
    let ours = std::path::Path::new(STORAGE);
    let (s, go) = (Scratch::new(), Scratch::new());
    let (_, our_list) = said(ours, &s, &["--help"]);
    let (_, go_list) = said(&reference, &go, &["--help"]);
    let our_lines: Vec<&str> = our_list.lines().collect();
    let go_lines: Vec<&str> = go_list.lines().collect();
    let commands_end = |lines: &[&str]| lines.iter().position(|l| l.starts_with("Options:"));
    let (Some(our_end), Some(go_end)) = (commands_end(&our_lines), commands_end(&go_lines)) else {
        panic!("no Options: line\n{our_list}\n{go_list}");
    };
    // Upstream's list, then (ours) our own commands, then the blank line before `Options:`.
    assert_eq!(
        our_lines[..go_end - 1],
        go_lines[..go_end - 1],
        "upstream's commands first"
    );
    assert_eq!(our_lines[our_end..], go_lines[go_end..], "the global flags");
    let commands = reference_commands(&reference);
    assert!(commands.len() > 50, "{commands:?}");
    for command in &commands {
        let (our_code, our_text) = said(ours, &s, &[command, "--help"]);
        let (go_code, go_text) = said(&reference, &go, &[command, "--help"]);
        let our_text = our_text.replace(&s.dir().display().to_string(), "DIR");
        let go_text = go_text.replace(&go.dir().display().to_string(), "DIR");
        assert_eq!((our_code, our_text), (go_code, go_text), "{command} --help");
    }
}

/// How many arguments each command takes, as upstream 1.60 counts them: for 0 to 3
/// arguments (names that name nothing), both binaries agree on "more arguments required",
/// "too many arguments" or neither.
#[test]
fn every_command_takes_as_many_arguments_as_the_references() {
    let Some(reference) = crate::harness::reference_binary() else {
        return;
    };
    let ours = std::path::Path::new(STORAGE);
    let verdict = |text: &str| {
        if text.contains("more arguments required") {
            "too few"
        } else if text.contains("too many arguments") {
            "too many"
        } else {
            "taken"
        }
    };
    let (s, go) = (Scratch::new(), Scratch::new());
    let mut differ = Vec::new();
    for command in reference_commands(&reference) {
        for count in 0..=3 {
            let mut args = vec![command.as_str()];
            let names = ["zz-none-1", "zz-none-2", "zz-none-3"];
            args.extend_from_slice(&names[..count]);
            let ours = verdict(&said(ours, &s, &args).1);
            let upstream = verdict(&said(&reference, &go, &args).1);
            if ours != upstream {
                differ.push(format!(
                    "{command} with {count}: {ours}, upstream {upstream}"
                ));
            }
        }
    }
    assert!(differ.is_empty(), "{differ:#?}");
}

/// Without a store flag a command's flag list shows the options of the configuration files
/// as its defaults (upstream makes the command's flag set from them), and `--debug` as
/// given; `--image-store` and `--transient-store` alone do not count as store flags (the
/// configuration replaces them). `--help` opens no store, so the system's is not touched.
#[test]
fn usage_without_store_flags_shows_the_configured_options() {
    let Some(reference) = crate::harness::reference_binary() else {
        return;
    };
    let run = |binary: &std::path::Path, args: &[&str]| {
        let (code, text) = printed(std::process::Command::new(binary).args(args));
        // Log lines (the debug ones) carry the time; the usage is what is compared.
        let usage: Vec<String> = text
            .lines()
            .filter(|l| crate::harness::log_body(l).is_none())
            .map(|l| l.replace("containers-storage", "storage"))
            .collect();
        (code, usage)
    };
    for args in [
        &["layers", "--help"][..],
        &["--debug", "check", "--help"],
        &[
            "--transient-store",
            "--image-store",
            "/nonexistent",
            "create-layer",
            "--help",
        ],
    ] {
        let ours = run(std::path::Path::new(STORAGE), args);
        assert!(
            ours.1.iter().any(|l| l.starts_with("  --graph, -g=")),
            "{args:?}: {ours:?}"
        );
        assert_eq!(ours, run(&reference, args), "{args:?}");
    }
}
