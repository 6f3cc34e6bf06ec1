//! For every tool of the catalogue, its minimal valid submission through the mount ends
//! `complete` with outputs that decode as their type: exactly one create each.

mod common;

use common::drive::TestDrive;
use mhfs::api::catalog::{TOOLS, Tool};

/// Drops the minimal submission of a tool the way a user would; returns the job name.
fn submit(d: &TestDrive, tool: &Tool) -> String {
    let name = format!("t-{}", tool.slug);
    let inbox = format!("inbox/{}", tool.slug);
    if tool.needs_folder() || tool.required_inputs().count() == 0 && tool.text.is_none() {
        // A folder of role-named files, built outside and copied in with `cp -r`.
        let folder = d.outside().join(&name);
        std::fs::create_dir_all(&folder).unwrap();
        for input in tool.required_inputs() {
            common::sample(&folder, input.role, input.media[0]);
        }
        if tool.text.is_some_and(|t| t.required) {
            std::fs::write(
                folder.join("prompt.txt"),
                format!("a test of {}\n", tool.slug),
            )
            .unwrap();
        }
        d.ok(&format!("cp -r {} {inbox}/", folder.display()));
    } else if let Some(input) = tool.required_inputs().next() {
        let file = common::sample(&d.outside(), &name, input.media[0]);
        d.ok(&format!("cp {} {inbox}/", file.display()));
    } else {
        d.ok(&format!(
            "echo 'a test of {}' > {inbox}/{name}.txt",
            tool.slug
        ));
    }
    name
}

#[test]
fn every_tool_completes_through_the_mount() {
    let Some(d) = TestDrive::start() else { return };
    let names: Vec<(String, &Tool)> = TOOLS.iter().map(|t| (submit(&d, t), t)).collect();
    for (name, tool) in &names {
        let status = d.wait_status(name, &["complete", "error"]);
        let dir = d.path(&format!("jobs/{name}"));
        if status != "complete" {
            let error = std::fs::read_to_string(dir.join("error")).unwrap_or_default();
            panic!("{}: {status}: {error}\n{}", tool.slug, d.log());
        }
        let outputs: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                let n = p.file_name().unwrap().to_string_lossy().to_string();
                n.starts_with("output") || n.starts_with("face-")
            })
            .collect();
        assert!(
            !outputs.is_empty(),
            "{}: no outputs in {}",
            tool.slug,
            dir.display()
        );
        for out in outputs {
            common::check_output(tool, &out);
        }
        let request: serde_json::Value =
            serde_json::from_slice(&std::fs::read(dir.join("request.json")).unwrap()).unwrap();
        assert_eq!(request["name"], serde_json::json!(name), "{}", tool.slug);
    }
    assert_eq!(d.count("create"), TOOLS.len() as u64);
    for t in TOOLS {
        let op = if t.slug == "face-detection" {
            "create".to_string()
        } else {
            format!("create:{}", t.slug)
        };
        assert!(d.count(&op) >= 1, "{}", t.slug);
    }
}
