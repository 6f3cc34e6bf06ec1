//! Names that are never submitted, and how job folders are named.

/// Hidden names, editor or download temp names, and the files Mac and Windows clients leave
/// behind: kept in the inbox as scratch files, never submitted (README, "Submitting").
///
/// Hidden (`.*`) covers macOS's AppleDouble `._*` and `.DS_Store`, and LibreOffice's
/// `.~lock.*#`. Windows names are matched case-insensitively, as Windows does: `Thumbs.db`,
/// `desktop.ini`, and Office's owner files `~$*`.
pub fn is_scratch(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with('.')
        || name.ends_with('~')
        || name.starts_with("~$")
        || name == "4913"
        || lower == "thumbs.db"
        || lower == "desktop.ini"
        || [".swp", ".swx", ".tmp", ".part", ".crdownload"]
            .iter()
            .any(|s| lower.ends_with(s))
}

/// The longest name a file system takes (bytes).
pub const NAME_MAX: usize = 255;

/// `head` then `tail`, within `NAME_MAX` bytes: `head` is cut (on a character boundary) so
/// `tail` (a collision suffix, an extension) is kept whole.
pub fn fit_name(head: &str, tail: &str) -> String {
    let mut end = NAME_MAX.saturating_sub(tail.len()).min(head.len());
    while !head.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{tail}", &head[..end])
}

/// The job name for a dropped `name`: its stem, made unique with `-2`, `-3`, ... (within
/// `NAME_MAX` bytes: the stem is shortened to make room for the suffix).
pub fn job_name(name: &str, taken: impl Fn(&str) -> bool) -> String {
    let stem = std::path::Path::new(name)
        .file_stem()
        .and_then(|s| s.to_str())
        .filter(|s| !s.is_empty())
        .unwrap_or("job");
    let first = fit_name(stem, "");
    if !taken(&first) {
        return first;
    }
    (2..)
        .map(|n| fit_name(stem, &format!("-{n}")))
        .find(|candidate| !taken(candidate))
        .expect("some suffix is free")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scratch_names_are_recognised() {
        for n in [
            ".x.png",
            "x.png~",
            "4913",
            ".x.swp",
            "x.TMP",
            "x.part",
            "x.crdownload",
            ".rsync.XyZ12",
        ] {
            assert!(is_scratch(n), "{n}");
        }
        for n in ["x.png", "prompt.txt", "4913.png", "face.jpg"] {
            assert!(!is_scratch(n), "{n}");
        }
    }

    #[test]
    fn mac_and_windows_scratch_names_are_recognised() {
        for n in [
            "._photo.png",
            ".DS_Store",
            "Thumbs.db",
            "THUMBS.DB",
            "thumbs.db",
            "desktop.ini",
            "Desktop.INI",
            "~$report.docx",
            "~$x.png",
            ".~lock.photo.png#",
        ] {
            assert!(is_scratch(n), "{n}");
        }
        for n in [
            "thumbs.png",
            "desktop.png",
            "~photo.png",
            "$x.png",
            "lock.png#",
        ] {
            assert!(!is_scratch(n), "{n}");
        }
    }

    #[test]
    fn generated_names_stay_within_255_bytes() {
        let long = format!("{}.png", "é".repeat(127)); // 254 bytes of stem
        let first = job_name(&long, |_| false);
        assert_eq!(first.len(), 254);
        let second = job_name(&long, |n| n == first);
        assert!(second.len() <= NAME_MAX, "{}", second.len());
        assert!(second.ends_with("-2"));
        assert_eq!(fit_name(&"a".repeat(300), ".png").len(), NAME_MAX);
    }

    #[test]
    fn job_names_are_unique() {
        let taken = ["holiday", "holiday-2"];
        assert_eq!(job_name("holiday.jpg", |n| taken.contains(&n)), "holiday-3");
        assert_eq!(job_name("cat.txt", |n| taken.contains(&n)), "cat");
    }
}
