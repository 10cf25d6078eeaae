//! Against the Go reference `containers-storage` (upstream 1.60, see
//! [`crate::harness::reference_binary`]): the same script on two scratch overlay stores gives
//! the same output modulo generated IDs, and each tool reads the store the other wrote.

use std::collections::BTreeSet;
use std::path::Path;

use crate::harness::{id, reference_binary, tar_of, Scratch, STORAGE};

/// Builds the same objects in a store with fixed IDs.
fn populate(s: &Scratch) {
    s.ok(&["create-layer", "--id", &id("base"), "-n", "base"]);
    s.ok_with_input(
        &["import-layer", "--id", &id("app"), "-n", "app", &id("base")],
        &tar_of(&[("app/", b""), ("app/run", b"#!/bin/sh\n")]),
    );
    s.ok(&["create-layer", "--id", &id("side"), &id("base")]);
    s.ok(&[
        "create-image",
        "--id",
        &id("img"),
        "-n",
        "img1",
        "-m",
        "meta",
        &id("app"),
    ]);
    s.ok(&[
        "create-container",
        "--id",
        &id("ctr"),
        "-n",
        "ctr1",
        &id("img"),
    ]);
    s.ok_with_input(&["set-image-data", &id("img"), "manifest"], b"{}");
}

/// Replaces 64-hex IDs that are not ours (generated ones) with a placeholder.
fn mask_generated(text: &str) -> String {
    let ours: BTreeSet<String> = ["base", "app", "side", "img", "ctr"]
        .iter()
        .map(|t| id(t))
        .collect();
    let mut out = String::new();
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        if word.len() == 64
            && word.bytes().all(|b| b.is_ascii_hexdigit())
            && !ours.contains(word.as_str())
        {
            out.push_str("<generated>");
        } else {
            out.push_str(word);
        }
        word.clear();
    };
    for c in text.chars() {
        if c.is_ascii_hexdigit() {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

#[test]
fn same_script_same_output() {
    let Some(go_cli) = reference_binary() else {
        return;
    };
    let ours = Scratch::new();
    let go = Scratch::with_binary(&go_cli, "overlay");
    populate(&ours);
    populate(&go);
    // Only what Debian's 1.43 knows too (it has no `layers -q`, for instance), so that
    // STORAGE_REFERENCE can still name it.
    let scripts: Vec<Vec<String>> = vec![
        vec!["layers".into()],
        vec!["images".into()],
        vec!["images".into(), "-q".into()],
        vec!["containers".into()],
        vec!["layer".into(), id("app")],
        vec!["get-names".into(), id("img")],
        vec!["metadata".into(), id("img")],
        vec!["list-image-data".into(), id("img")],
        vec!["get-image-data".into(), id("img"), "manifest".into()],
        vec!["exists".into(), id("app")],
        vec!["changes".into(), id("app")],
        vec!["diffsize".into(), id("app")],
    ];
    for args in scripts {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let a = ours.run(&args);
        let b = go.run(&args);
        assert_eq!(
            a.code,
            b.code,
            "{args:?}: {} / {} vs {} / {}",
            a.out(),
            a.stderr,
            b.out(),
            b.stderr
        );
        assert_eq!(
            mask_generated(&a.out()),
            mask_generated(&b.out()),
            "{args:?}"
        );
    }
}

/// JSON output with creation times dropped (they differ by nature) and generated IDs masked.
fn comparable_json(o: &crate::harness::Output) -> String {
    let mut v = o.json();
    if let Some(items) = v.as_array_mut() {
        for item in items {
            if let Some(obj) = item.as_object_mut() {
                obj.remove("created");
            }
        }
    }
    mask_generated(&v.to_string())
}

#[test]
fn same_records_as_json() {
    let Some(go_cli) = reference_binary() else {
        return;
    };
    let ours = Scratch::new();
    let go = Scratch::with_binary(&go_cli, "overlay");
    populate(&ours);
    populate(&go);
    for cmd in ["layers", "images", "containers"] {
        let a = ours.run(&[cmd, "-j"]);
        let b = go.run(&[cmd, "-j"]);
        assert_eq!(comparable_json(&a), comparable_json(&b), "{cmd} -j");
    }
}

fn summary(s: &Scratch, binary: &Path) -> (Vec<String>, Vec<String>, Vec<String>) {
    let run = |cmd: &str| {
        let mut c = std::process::Command::new(binary);
        c.args(s.globals()).args([cmd, "-j"]);
        let o = c.output().unwrap();
        assert!(o.status.success(), "{cmd}: {o:?}");
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
        let mut ids: Vec<String> = v
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|r| mask_generated(&format!("{} {}", r["id"], r["names"])))
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids
    };
    (run("layers"), run("images"), run("containers"))
}

#[test]
fn each_tool_reads_the_others_store() {
    let Some(go_cli) = reference_binary() else {
        return;
    };
    let ours = Scratch::new();
    let go = Scratch::with_binary(&go_cli, "overlay");
    populate(&ours);
    populate(&go);
    let go_view_of_ours = summary(&ours, &go_cli);
    let our_view_of_ours = summary(&ours, Path::new(STORAGE));
    assert_eq!(go_view_of_ours, our_view_of_ours);
    let our_view_of_go = summary(&go, Path::new(STORAGE));
    let go_view_of_go = summary(&go, &go_cli);
    assert_eq!(our_view_of_go, go_view_of_go);
    assert_eq!(our_view_of_go, our_view_of_ours);
    // Content written by one is readable by the other.
    let o = std::process::Command::new(STORAGE)
        .args(go.globals())
        .args(["diff", "-u", &id("app")])
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    assert_eq!(crate::harness::tar_names(&o.stdout), ["app/", "app/run"]);
}

#[test]
fn same_errors() {
    let Some(go_cli) = reference_binary() else {
        return;
    };
    let ours = Scratch::new();
    let go = Scratch::with_binary(&go_cli, "overlay");
    populate(&ours);
    populate(&go);
    let (base, app, img, ctr) = (id("base"), id("app"), id("img"), id("ctr"));
    // Failures as upstream 1.60 words them (1.43 differs on `images-by-digest foo`: it
    // prefixes the argument).
    let cases: Vec<Vec<&str>> = vec![
        vec!["layer", "nope"],
        vec!["create-layer", "--id", &base],
        vec!["create-layer", "-n", "base"],
        vec!["create-layer", "nope"],
        vec!["delete-layer", &base],
        vec!["delete-image", &img],
        vec!["delete-container", &base],
        vec!["metadata", "nope"],
        vec!["exists", "-j", &app, "nope"],
        vec!["exists", "-i", &app],
        vec!["mount", "nope"],
        vec!["unmount", "nope"],
        vec!["set-metadata", &img],
        vec!["images-by-digest", "foo"],
        vec!["container", &ctr, "nope"],
        vec!["create-layer", "-x"],
        vec!["layers", "-tx"],
        vec!["create-layer", "-nfoo", "x"],
        vec!["-graph", "/x", "layers"],
        vec!["layer"],
        vec!["frobnicate"],
    ];
    for args in cases {
        let a = ours.run(&args);
        let b = go.run(&args);
        assert_eq!(
            a.code,
            b.code,
            "{args:?}: {} / {} vs {} / {}",
            a.out(),
            a.stderr,
            b.out(),
            b.stderr
        );
        // Usage texts name the program; compare the first line, which carries the message.
        let first = |s: &str| {
            s.lines()
                .next()
                .unwrap_or_default()
                .replace(&*go_cli.to_string_lossy(), "storage")
        };
        let (ao, bo) = (mask_generated(&a.out()), mask_generated(&b.out()));
        if ao.starts_with("Usage") || ao.contains("arguments") {
            assert_eq!(first(&ao), first(&bo), "{args:?}");
        } else {
            assert_eq!(ao, bo, "{args:?}");
        }
        assert_eq!(first(&a.stderr), first(&b.stderr), "{args:?}");
    }
}
