//! The config file (`--config`, default `$XDG_CONFIG_HOME/mhfs/config.json`): presets, each an
//! inbox folder of its own, and the budget. It is read again whenever its mtime changes (the
//! mount watches it every second); a preset that is not valid is reported in the log and
//! left out, without stopping the drive or the other presets.
//!
//! ```json
//! {
//!   "budget": 500,
//!   "presets": {
//!     "upscale-4x": {"tool": "ai-image-upscaler", "params": {"scale_factor": 4}},
//!     "product-shot": {"steps": [
//!       {"tool": "image-background-remover"},
//!       {"tool": "ai-image-upscaler", "params": {"scale_factor": 2}},
//!       {"tool": "image-to-video"}
//!     ]}
//!   }
//! }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::time::SystemTime;

use serde_json::Value;

use crate::api::catalog::{self, Media, Output, Tool};

/// Preset folder inodes: `FIRST..END`, one per name for the life of the mount, never reused.
pub const FIRST: u64 = 256;
pub const END: u64 = 1024;

#[derive(Debug, Clone)]
pub struct Step {
    pub tool: &'static Tool,
    pub params: Value,
}

impl PartialEq for Step {
    fn eq(&self, other: &Step) -> bool {
        self.tool.slug == other.tool.slug && self.params == other.params
    }
}

/// A preset: one step (a tool and parameters), or a pipeline of several.
#[derive(Debug, Clone, PartialEq)]
pub struct Preset {
    pub name: String,
    pub steps: Vec<Step>,
}

impl Preset {
    /// The tool of its folder: what files it takes.
    pub fn tool(&self) -> &'static Tool {
        self.steps[0].tool
    }

    pub fn is_pipeline(&self) -> bool {
        self.steps.len() > 1
    }
}

/// The config file, parsed: the valid presets, the budget, and what was wrong.
#[derive(Debug, Default)]
pub struct Config {
    pub presets: BTreeMap<String, Preset>,
    pub budget: Option<i64>,
    pub errors: Vec<String>,
}

/// The media a tool's output is, as an input of the next step.
fn output_media(tool: &Tool) -> Option<Media> {
    match tool.output {
        Output::Image { .. } => Some(Media::Image),
        Output::Video | Output::Animation => Some(Media::Video),
        Output::Audio => Some(Media::Audio),
        Output::FaceCrops => None,
    }
}

fn step(name: &str, i: usize, v: &Value) -> Result<Step, String> {
    let slug = v
        .get("tool")
        .and_then(Value::as_str)
        .ok_or_else(|| format!("preset {name:?}: step {} has no \"tool\"", i + 1))?;
    let tool = catalog::tool(slug)
        .ok_or_else(|| format!("preset {name:?}: no such tool {slug:?} (README.txt lists them)"))?;
    let params = v.get("params").cloned().unwrap_or(Value::Null);
    if !params.is_null() && !params.is_object() {
        return Err(format!(
            "preset {name:?}: \"params\" of {slug} must be a JSON object"
        ));
    }
    Ok(Step { tool, params })
}

fn preset(name: &str, v: &Value) -> Result<Preset, String> {
    if name.is_empty() || name.starts_with('.') || name.contains('/') || name.contains('\0') {
        return Err(format!("preset {name:?}: not a folder name"));
    }
    if catalog::tool(name).is_some() {
        return Err(format!("preset {name:?}: a tool has that name"));
    }
    let steps = match v.get("steps") {
        Some(Value::Array(steps)) if !steps.is_empty() => steps
            .iter()
            .enumerate()
            .map(|(i, s)| step(name, i, s))
            .collect::<Result<Vec<_>, _>>()?,
        Some(_) => {
            return Err(format!(
                "preset {name:?}: \"steps\" must be a non-empty list"
            ));
        }
        None => vec![step(name, 0, v)?],
    };
    for pair in steps.windows(2) {
        let (a, b) = (pair[0].tool, pair[1].tool);
        let takes = output_media(a).and_then(|m| b.input_for(m));
        if takes.is_none() || b.needs_folder() {
            return Err(format!(
                "preset {name:?}: {} cannot take the output of {} as its input",
                b.slug, a.slug
            ));
        }
    }
    Ok(Preset {
        name: name.to_string(),
        steps,
    })
}

/// Parses the config file. `Err` only when it is not a JSON object at all; a bad preset is
/// an entry of `errors`.
pub fn parse(text: &str) -> Result<Config, String> {
    let root: Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let Some(root) = root.as_object() else {
        return Err("the config must be a JSON object".into());
    };
    let mut config = Config::default();
    match root.get("budget") {
        None | Some(Value::Null) => {}
        Some(v) => match v.as_i64().filter(|b| *b >= 0) {
            Some(b) => config.budget = Some(b),
            None => config
                .errors
                .push("\"budget\" must be a whole number of credits".into()),
        },
    }
    match root.get("presets") {
        None => {}
        Some(Value::Object(presets)) => {
            for (name, v) in presets {
                match preset(name, v) {
                    Ok(p) => {
                        config.presets.insert(name.clone(), p);
                    }
                    Err(e) => config.errors.push(e),
                }
            }
        }
        Some(_) => config
            .errors
            .push("\"presets\" must be a JSON object of presets by name".into()),
    }
    Ok(config)
}

#[derive(Debug, Default)]
struct Table {
    presets: BTreeMap<String, Preset>,
    /// Every name seen this mount and its inode (kept when the preset goes, so a name that
    /// comes back has its old number and no number is ever reused).
    inos: HashMap<String, u64>,
    names: HashMap<u64, String>,
}

/// The presets in force, shared by the drive (folders) and the config watcher.
#[derive(Debug, Default)]
pub struct Presets {
    table: RwLock<Table>,
}

impl Presets {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Table> {
        self.table.read().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, name: &str) -> Option<Preset> {
        self.read().presets.get(name).cloned()
    }

    /// The folder inode of a preset in force.
    pub fn ino(&self, name: &str) -> Option<u64> {
        let t = self.read();
        t.presets
            .contains_key(name)
            .then(|| t.inos.get(name).copied())?
    }

    /// The preset in force whose folder has this inode.
    pub fn name_of(&self, ino: u64) -> Option<String> {
        let t = self.read();
        t.names
            .get(&ino)
            .filter(|n| t.presets.contains_key(*n))
            .cloned()
    }

    /// (inode, name) of every preset in force.
    pub fn list(&self) -> Vec<(u64, String)> {
        let t = self.read();
        t.presets
            .keys()
            .filter_map(|n| t.inos.get(n).map(|i| (*i, n.clone())))
            .collect()
    }

    /// Puts `presets` in force; returns the names added or changed and the names removed.
    pub fn replace(&self, presets: BTreeMap<String, Preset>) -> (Vec<String>, Vec<String>) {
        let mut t = self.table.write().unwrap_or_else(|p| p.into_inner());
        let removed: Vec<String> = t
            .presets
            .keys()
            .filter(|n| !presets.contains_key(*n))
            .cloned()
            .collect();
        let mut added = Vec::new();
        let mut kept = BTreeMap::new();
        for (name, p) in presets {
            if !t.inos.contains_key(&name) {
                let next = FIRST + t.inos.len() as u64;
                if next >= END {
                    log::warn!("preset {name:?}: too many preset names in this mount; remount");
                    continue;
                }
                t.inos.insert(name.clone(), next);
                t.names.insert(next, name.clone());
            }
            if t.presets.get(&name) != Some(&p) {
                added.push(name.clone());
            }
            kept.insert(name, p);
        }
        t.presets = kept;
        (added, removed)
    }
}

/// Where the config file is: `--config`, else `$XDG_CONFIG_HOME/mhfs/config.json`.
pub fn default_path() -> Option<PathBuf> {
    let config = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(config.join("mhfs/config.json"))
}

/// The file's mtime and length (what the watcher compares), `None` when it is missing.
pub fn stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let m = std::fs::metadata(path).ok()?;
    Some((m.modified().ok()?, m.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_parse_and_bad_ones_are_reported_alone() {
        let c = parse(
            r#"{"budget": 10, "presets": {
                "up4": {"tool": "ai-image-upscaler", "params": {"scale_factor": 4}},
                "shot": {"steps": [{"tool": "image-background-remover"},
                                   {"tool": "ai-image-upscaler", "params": {"scale_factor": 2}},
                                   {"tool": "image-to-video"}]},
                "bad": {"tool": "no-such-tool"},
                "ai-image-upscaler": {"tool": "ai-image-upscaler"}
            }}"#,
        )
        .unwrap();
        assert_eq!(c.budget, Some(10));
        assert_eq!(c.presets.len(), 2);
        assert!(c.presets["shot"].is_pipeline());
        assert_eq!(c.errors.len(), 2, "{:?}", c.errors);
        assert!(parse("[1]").is_err());
    }

    #[test]
    fn preset_inodes_are_never_reused() {
        let p = Presets::default();
        let one = |n: &str| {
            let mut m = BTreeMap::new();
            m.insert(
                n.to_string(),
                Preset {
                    name: n.into(),
                    steps: vec![Step {
                        tool: catalog::tool("ai-image-upscaler").unwrap(),
                        params: Value::Null,
                    }],
                },
            );
            m
        };
        p.replace(one("a"));
        let a = p.ino("a").unwrap();
        p.replace(one("b"));
        assert_eq!(p.ino("a"), None);
        assert_ne!(p.ino("b").unwrap(), a);
        p.replace(one("a"));
        assert_eq!(p.ino("a"), Some(a));
    }
}
