//! Container commands: create-container, containers, container, delete-container,
//! get-container-dir.

use crate::harness::{id, Scratch};

fn image(s: &Scratch) -> (String, String) {
    let l = s.create_layer(&["--id", &id("imglayer")]);
    let img = id("image");
    s.ok(&["create-image", "--id", &img, "-n", "theimage", &l]);
    (l, img)
}

#[test]
fn create_and_list_containers() {
    let s = Scratch::new();
    let (top, img) = image(&s);
    let ctr = id("ctr");
    assert_eq!(
        s.ok(&[
            "create-container",
            "--id",
            &ctr,
            "-n",
            "c1",
            "-n",
            "c2",
            "theimage"
        ]),
        format!("{ctr}\n\tc1\n\tc2\n")
    );
    assert_eq!(
        s.ok(&["containers"]),
        format!("{ctr}\n\tname: c1\n\tname: c2\n")
    );
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["containers", "-j"])).unwrap();
    assert_eq!(v[0]["id"], ctr);
    assert_eq!(v[0]["image"], img);
    let layer = v[0]["layer"].as_str().unwrap().to_string();
    // The container's layer is a new child of the image's top layer.
    let info = s.ok(&["layer", &layer]);
    assert!(info.contains(&format!("Parent: {top}\n")), "{info}");
    let text = s.ok(&["container", "c1"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines[..5],
        [
            format!("ID: {ctr}").as_str(),
            "Name: c1",
            "Name: c2",
            format!("Image: {img}").as_str(),
            "Image name: theimage",
        ]
    );
    assert!(lines[5].starts_with("Size"), "{text}");
    assert_eq!(lines[6], format!("Layer: {layer}"));
    let v: serde_json::Value = serde_json::from_str(&s.ok(&["container", "-j", &ctr])).unwrap();
    assert_eq!(v[0]["names"], serde_json::json!(["c1", "c2"]));
    let o = s.run(&["container", "nope"]);
    assert_eq!((o.code, o.out().as_str()), (1, ""));
}

#[test]
fn create_container_errors() {
    let s = Scratch::new();
    let o = s.fails(&["create-container", "no-such-image"]);
    let unknown = "locating image with ID \"no-such-image\": image not known\n";
    assert_eq!(o.stderr, unknown);
    if let Some(reference) = crate::harness::reference_binary() {
        let go = Scratch::with_binary(&reference, crate::DRIVER);
        assert_eq!(
            go.fails(&["create-container", "no-such-image"]).stderr,
            unknown
        );
    }
    let (_, img) = image(&s);
    let busy = crate::harness::first_line(&s.ok(&["create-container", "-n", "busy", &img]));
    assert_eq!(
        s.fails(&["create-container", "-n", "busy", &img]).stderr,
        format!(
            "the container name \"busy\" is already in use by {busy}. You have to remove that \
             container to be able to reuse that name: that name is already in use\n"
        )
    );
}

#[test]
fn delete_container_removes_record_layer_and_dirs() {
    let s = Scratch::new();
    let (top, img) = image(&s);
    let ctr = id("victim");
    s.ok(&["create-container", "--id", &ctr, "-m", "md", &img]);
    let dir = s.ok(&["get-container-dir", &ctr]);
    let expected = s
        .graph()
        .join(format!("{}-containers/{ctr}/userdata", crate::DRIVER));
    assert_eq!(dir, format!("{}\n", expected.display()));
    assert!(expected.is_dir());
    let run_dir = s.ok(&["get-container-run-dir", &ctr]);
    assert_eq!(
        run_dir,
        format!(
            "{}\n",
            s.run_root()
                .join(format!("{}-containers/{ctr}/userdata", crate::DRIVER))
                .display()
        )
    );

    let o = s.fails(&["delete-container", &top]);
    assert_eq!(o.stderr, format!("{top}: identifier is not a container\n"));
    s.ok(&["delete-container", &ctr]);
    assert_eq!(s.ok(&["containers", "-j"]), "[]\n");
    assert_eq!(s.ok(&["layers", "-q"]), format!("{top}\n"));
    assert!(!expected.exists());
    assert_eq!(s.fails(&["get-container-dir", &ctr]).code, 1);
}

#[test]
fn volatile_container() {
    let s = Scratch::new();
    let (_, img) = image(&s);
    let out = s.ok(&["create-container", "--volatile", "-j", &img]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["flags"]["Volatile"], true);
}

#[test]
fn transient_store_keeps_containers_in_the_run_root() {
    let s = Scratch::new();
    let (_, img) = image(&s);
    let ctr = id("transient");
    s.ok(&["--transient-store", "create-container", "--id", &ctr, &img]);
    let file = s.run_root().join(format!(
        "{}-containers/volatile-containers.json",
        crate::DRIVER
    ));
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains(&ctr), "{text}");
    assert_eq!(
        s.ok(&["--transient-store", "containers"]),
        format!("{ctr}\n")
    );
}
