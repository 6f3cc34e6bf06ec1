//! The docs stay true to the code.

#[test]
fn readme_lists_every_tool_with_its_current_defaults() {
    let readme = include_str!("../README.md");
    let start = readme.find("<!-- tools -->\n").expect("tools marker") + "<!-- tools -->\n".len();
    let end = readme.find("<!-- /tools -->").expect("end marker");
    assert_eq!(
        &readme[start..end],
        mhfs::fs::readme::tools_markdown(),
        "README.md's tools table is stale: paste the output of `mhfs tools`"
    );
}

#[test]
fn semantics_names_existing_tests() {
    let semantics = include_str!("../docs/SEMANTICS.md");
    let tests: String = [
        "mount_programs.rs",
        "mount_jobs.rs",
        "mount_errors.rs",
        "mount_tools.rs",
        "mount_random.rs",
        "webhook_receiver.rs",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(format!("{}/tests/{f}", env!("CARGO_MANIFEST_DIR"))).unwrap())
    .collect();
    let mut named = 0;
    for name in semantics
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|s| s.starts_with("test: "))
    {
        let test = name.trim_start_matches("test: ");
        assert!(
            tests.contains(&format!("fn {test}()")),
            "docs/SEMANTICS.md names a missing test: {test}"
        );
        named += 1;
    }
    assert!(named >= 20, "only {named} claims name their test");
}
