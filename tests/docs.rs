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

/// Every test function in the repository: `tests/*.rs` and the unit tests under `src/`.
fn test_sources() -> String {
    fn walk(dir: &std::path::Path, out: &mut String) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push_str(&std::fs::read_to_string(&path).unwrap());
            }
        }
    }
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut all = String::new();
    walk(&root.join("tests"), &mut all);
    walk(&root.join("src"), &mut all);
    all
}

/// The claims of docs/SEMANTICS.md: its list items, with the heading they stand under.
fn claims() -> Vec<(String, String)> {
    let semantics = include_str!("../docs/SEMANTICS.md");
    let mut heading = String::new();
    let mut out: Vec<(String, String)> = Vec::new();
    for line in semantics.lines() {
        if let Some(h) = line.strip_prefix('#') {
            heading = h.trim_start_matches('#').trim().to_string();
        } else if let Some(item) = line.strip_prefix("- ") {
            out.push((heading.clone(), item.to_string()));
        } else if line.starts_with("  ")
            && let Some(last) = out.last_mut()
        {
            last.1.push(' ');
            last.1.push_str(line.trim());
        }
    }
    out
}

#[test]
fn semantics_names_existing_tests() {
    let tests = test_sources();
    let mut named = 0;
    for (_, claim) in claims() {
        for test in claim
            .split('`')
            .skip(1)
            .step_by(2)
            .filter_map(|s| s.strip_prefix("test: "))
        {
            assert!(
                tests.contains(&format!("fn {test}(")),
                "docs/SEMANTICS.md names a missing test: {test}"
            );
            named += 1;
        }
    }
    // Tables of claims name their test in the last column.
    let semantics = include_str!("../docs/SEMANTICS.md");
    for row in semantics.lines().filter(|l| l.starts_with('|')) {
        let last = row
            .trim_end_matches('|')
            .rsplit('|')
            .next()
            .unwrap_or("")
            .trim();
        if let Some(test) = last.strip_prefix('`').and_then(|t| t.strip_suffix('`')) {
            assert!(
                tests.contains(&format!("fn {test}(")),
                "docs/SEMANTICS.md's table names a missing test: {test}"
            );
            named += 1;
        }
    }
    assert!(named >= 40, "only {named} claims name their test");
}

/// A claim is either tested (it names its test), measured (it points to BENCHMARKS.md), or
/// stands under "Not supported".
#[test]
fn every_semantics_claim_names_a_test() {
    let untested: Vec<String> = claims()
        .into_iter()
        .filter(|(heading, claim)| {
            !heading.starts_with("Not supported")
                && !claim.contains("`test: ")
                && !claim.contains("BENCHMARKS.md")
        })
        .map(|(heading, claim)| format!("[{heading}] {claim}"))
        .collect();
    assert!(
        untested.is_empty(),
        "docs/SEMANTICS.md claims that name no test:\n{}",
        untested.join("\n")
    );
}
