//! Where stats files live: the writer's file name template and the readers' default glob,
//! both compatible with Python mmstats 0.7+ (`MMSTATS_PATH`, `MMSTATS_FILES`,
//! `MMSTATS_GLOB`), and the expansion of reader arguments that may be files or globs.

use std::collections::HashSet;
use std::env;
use std::path::{Path, PathBuf};

use super::process;

/// The file name template when `MMSTATS_FILES` is unset.
pub const DEFAULT_TEMPLATE: &str = "{CMD}-{PID}-{TID}.mmstats";

/// The directory stats files go in: `$MMSTATS_PATH`, else the temp dir.
pub fn stats_dir() -> PathBuf {
    env::var_os("MMSTATS_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(env::temp_dir)
}

/// The file a writer on thread `tid` creates: `$MMSTATS_FILES` (else
/// [`DEFAULT_TEMPLATE`]) expanded, inside [`stats_dir`] unless the template is absolute.
pub fn writer_path(tid: u32) -> Result<PathBuf, String> {
    let template = env::var("MMSTATS_FILES")
        .ok()
        .filter(|t| !t.is_empty())
        .unwrap_or_else(|| DEFAULT_TEMPLATE.to_owned());
    let name = expand_template(&template, &process::command_name(), std::process::id(), tid)?;
    Ok(stats_dir().join(name))
}

/// Expands `{CMD}`, `{PID}` and `{TID}` in a file name template; `{{` and `}}` are literal
/// braces (Python `str.format` rules, mmstats 0.7+). The 0.6 seed's `%PID%` and `%TID%`
/// (plain replacement) are expanded first, so an old `MMSTATS_FILES` keeps working.
pub fn expand_template(template: &str, cmd: &str, pid: u32, tid: u32) -> Result<String, String> {
    let seeded = template
        .replace("%PID%", &pid.to_string())
        .replace("%TID%", &tid.to_string());
    let template = seeded.as_str();
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(at) = rest.find(['{', '}']) {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        let Some(close) = tail.find('}').filter(|_| tail.starts_with('{')) else {
            return Err(format!("stats file template {template:?}: unmatched brace"));
        };
        match &tail[1..close] {
            "CMD" => out.push_str(cmd),
            "PID" => out.push_str(&pid.to_string()),
            "TID" => out.push_str(&tid.to_string()),
            other => {
                return Err(format!(
                    "stats file template {template:?}: unknown field {{{other}}} (use {{CMD}}, {{PID}}, {{TID}})"
                ))
            }
        }
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The readers' default pattern: `$MMSTATS_GLOB`, else `$MMSTATS_PATH/*.mmstats`, else
/// `<temp dir>/*.mmstats`.
pub fn default_glob() -> String {
    match env::var("MMSTATS_GLOB") {
        Ok(glob) if !glob.is_empty() => glob,
        _ => stats_dir().join("*.mmstats").to_string_lossy().into_owned(),
    }
}

/// The files named by reader arguments, in order, without repeats. An argument that
/// names an existing path is taken as it is; one with glob characters is expanded (sorted).
/// No arguments means [`default_glob`]. Returns the files and the patterns that matched
/// nothing, so the caller can warn about explicit ones.
pub fn expand(args: &[String]) -> Result<(Vec<PathBuf>, Vec<String>), String> {
    let default;
    let patterns: &[String] = if args.is_empty() {
        default = [default_glob()];
        &default
    } else {
        args
    };
    let mut files: Vec<PathBuf> = Vec::new();
    let mut seen = HashSet::new();
    let mut unmatched = Vec::new();
    for pattern in patterns {
        let literal = Path::new(pattern);
        if literal.exists() || !pattern.contains(['*', '?', '[']) {
            push_unique(&mut files, &mut seen, literal.to_path_buf());
            continue;
        }
        let before = files.len();
        match in_one_directory(pattern) {
            Some(matches) => {
                for path in matches {
                    push_unique(&mut files, &mut seen, path);
                }
            }
            None => {
                let matches =
                    glob::glob(pattern).map_err(|e| format!("bad pattern {pattern:?}: {e}"))?;
                for path in matches.flatten() {
                    if !path.is_dir() {
                        push_unique(&mut files, &mut seen, path);
                    }
                }
            }
        }
        if files.len() == before {
            unmatched.push(pattern.clone());
        }
    }
    Ok((files, unmatched))
}

/// The common case, a pattern only in the last component (`/run/web/*.mmstats`): the
/// directory's entries matched by name, sorted as `glob` sorts them, directories left out
/// by the entry's type (no `stat` per file, which for thousands of files is a tenth of a
/// reader's time). `None` when the pattern is another shape (then `glob` does it).
fn in_one_directory(pattern: &str) -> Option<Vec<PathBuf>> {
    let path = Path::new(pattern);
    let name = path.file_name()?.to_str()?;
    let dir = path.parent()?;
    if dir.to_str()?.contains(['*', '?', '[']) || pattern.ends_with('/') || name.contains("**") {
        return None;
    }
    let matcher = glob::Pattern::new(name).ok()?;
    let options = glob::MatchOptions::new();
    let listed = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    // An unreadable directory matches nothing, as with `glob`.
    let Ok(entries) = std::fs::read_dir(listed) else {
        return Some(Vec::new());
    };
    let mut names: Vec<std::ffi::OsString> = entries
        .flatten()
        .filter(|entry| {
            entry
                .file_name()
                .to_str()
                .is_some_and(|n| matcher.matches_with(n, options))
        })
        .filter(|entry| match entry.file_type() {
            Ok(kind) if kind.is_symlink() => !entry.path().is_dir(),
            Ok(kind) => !kind.is_dir(),
            Err(_) => true,
        })
        .map(|entry| entry.file_name())
        .collect();
    names.sort();
    Some(names.into_iter().map(|n| dir.join(n)).collect())
}

fn push_unique(files: &mut Vec<PathBuf>, seen: &mut HashSet<PathBuf>, path: PathBuf) {
    if seen.insert(path.clone()) {
        files.push(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_expand_like_python_format() {
        assert_eq!(
            expand_template(DEFAULT_TEMPLATE, "web", 12, 13).unwrap(),
            "web-12-13.mmstats"
        );
        assert_eq!(expand_template("{{x}}-{PID}", "c", 1, 2).unwrap(), "{x}-1");
        assert!(expand_template("{HOST}", "c", 1, 2)
            .unwrap_err()
            .contains("{HOST}"));
        assert!(expand_template("a{PID", "c", 1, 2).is_err());
        assert!(expand_template("a}b", "c", 1, 2).is_err());
        // mmstats 0.6.1's default and templates.
        assert_eq!(
            expand_template("mmstats-%PID%-%TID%", "c", 12, 13).unwrap(),
            "mmstats-12-13"
        );
        assert_eq!(
            expand_template("{CMD}.%PID%.{TID}", "web", 7, 8).unwrap(),
            "web.7.8"
        );
    }
}
