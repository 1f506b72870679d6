//! Tidy: the house rules that used to be kept by discipline alone, checked as tests in the
//! style of rust-analyzer's `xtask/src/tidy.rs`. `cargo test -p xtask` runs them, and so does
//! `cargo xtask test` (its `cargo test --workspace` includes this crate). Every check collects
//! all offenders, each as `file:line: what`, so one run shows everything there is to fix.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// The methods that read the wall clock or a monotonic clock; `core` gets its time passed in.
const CLOCK_CALLS: [&str; 4] = ["Utc::now", "Local::now", "SystemTime::now", "Instant::now"];

/// Crates that hold core's pure model and must therefore follow core's clock rule too (the
/// second one exists once the sqlx-free model crate is split off core).
const CLOCKLESS_CRATES: [&str; 2] = ["core", "model"];

/// Packages that may depend on anyhow as a whole: the `bestand` front end and the developer
/// automation. Any other package with a binary target may use it in that binary's files only.
const ANYHOW_PACKAGES: [&str; 2] = ["bestand-cli", "xtask"];

/// Packages that must not reach sqlx through their normal dependencies.
const SQL_FREE_PACKAGES: [&str; 2] = ["bestand-connectors", "bestand-model"];

/// Strings that cite a document outside the repository: the notes the project was written
/// from, and a numbered section of them ("§7.1"; legal citations are written "§ 598").
/// Spelled in pieces so that this file does not cite them itself.
fn outside_citations() -> Vec<String> {
    [
        ["vendor", "-apis"],
        ["shared", "/docs"],
        ["prior", "-art"],
        ["style", "-models"],
        ["seeds", "/"],
        ["/work", "/"],
    ]
    .iter()
    .map(|parts| parts.concat())
    .collect()
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives one folder below the workspace root")
        .to_path_buf()
}

/// Every file of the repository's working tree, except build output and hidden folders
/// (`.git`, `.cargo`, `.ci` hold no Rust and cite nothing).
fn repository_files(root: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![root.to_path_buf()];
    while let Some(folder) = folders.pop() {
        let entries = fs::read_dir(&folder)
            .unwrap_or_else(|error| panic!("cannot list {}: {error}", folder.display()));
        for entry in entries {
            let entry = entry.expect("readable folder entry");
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || (folder == root && name == "target") {
                continue;
            }
            if entry.file_type().expect("file type").is_dir() {
                folders.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

fn relative(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .into_owned()
}

fn rust_files(root: &Path) -> Vec<PathBuf> {
    repository_files(root)
        .into_iter()
        .filter(|path| path.extension().is_some_and(|ext| ext == "rs"))
        .collect()
}

fn fail_on(rule: &str, offenders: Vec<String>) {
    assert!(
        offenders.is_empty(),
        "{rule}: {} offender(s)\n{}",
        offenders.len(),
        offenders.join("\n")
    );
}

/// The code of a line, without a `//` comment; good enough for the names we look for.
fn code_part(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

/// `cargo metadata` of the workspace, with the resolved dependency graph for this machine's
/// platform. Offline, so it must not ask for crates the build never downloaded: without
/// `--filter-platform` it wants every platform's dependencies (zip's `nix`, for BSD and
/// macOS only), which a fresh checkout's build does not fetch.
fn metadata(root: &Path) -> Value {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let rustc = std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let version = Command::new(rustc)
        .arg("-vV")
        .output()
        .expect("rustc -vV runs");
    let version = String::from_utf8_lossy(&version.stdout);
    let host = version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .expect("rustc -vV names the host platform")
        .to_string();
    let output = Command::new(cargo)
        .current_dir(root)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &host])
        .output()
        .expect("cargo metadata runs");
    assert!(
        output.status.success(),
        "cargo metadata failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON")
}

fn workspace_packages(meta: &Value) -> Vec<&Value> {
    let members: BTreeSet<&str> = meta["workspace_members"]
        .as_array()
        .expect("workspace_members")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .filter(|package| {
            package["id"]
                .as_str()
                .is_some_and(|id| members.contains(id))
        })
        .collect()
}

fn text(value: &Value) -> &str {
    value.as_str().unwrap_or_default()
}

/// `file:line` of the first line of a file containing `needle`, or just the file.
fn locate(root: &Path, file: &Path, needle: &str) -> String {
    let found = fs::read_to_string(file).ok().and_then(|content| {
        content
            .lines()
            .position(|line| line.contains(needle))
            .map(|at| at + 1)
    });
    match found {
        Some(line) => format!("{}:{line}", relative(root, file)),
        None => relative(root, file),
    }
}

#[test]
fn every_rust_file_opens_with_a_module_doc_line() {
    let root = workspace_root();
    let offenders = rust_files(&root)
        .into_iter()
        .filter(|file| {
            let content = fs::read_to_string(file).unwrap_or_default();
            !content.lines().next().unwrap_or("").starts_with("//!")
        })
        .map(|file| {
            format!(
                "{}:1: does not open with a `//!` line saying why the module exists",
                relative(&root, &file)
            )
        })
        .collect();
    fail_on("module docs", offenders);
}

#[test]
fn core_reads_no_clock() {
    let root = workspace_root();
    let mut offenders = Vec::new();
    for krate in CLOCKLESS_CRATES {
        let dir = root.join(krate);
        if !dir.join("Cargo.toml").exists() {
            continue;
        }
        for file in rust_files(&dir) {
            let content = fs::read_to_string(&file).unwrap_or_default();
            for (at, line) in content.lines().enumerate() {
                for call in CLOCK_CALLS {
                    if code_part(line).contains(call) {
                        offenders.push(format!(
                            "{}:{}: calls {call}; take the time as a parameter or a `Clock`",
                            relative(&root, &file),
                            at + 1
                        ));
                    }
                }
            }
        }
        // Clippy reads the clippy.toml of the crate's own folder, not the workspace's, when
        // there is one; the same rule must be there so that an editor shows it too.
        let clippy = dir.join("clippy.toml");
        let settings = fs::read_to_string(&clippy).unwrap_or_default();
        for call in CLOCK_CALLS {
            if !settings
                .lines()
                .any(|line| line.contains(&format!("::{call}\"")))
            {
                offenders.push(format!(
                    "{}: disallowed-methods does not name {call}",
                    relative(&root, &clippy)
                ));
            }
        }
    }
    fail_on("core reads no clock", offenders);
}

#[test]
fn anyhow_only_in_binaries() {
    let root = workspace_root();
    let meta = metadata(&root);
    let mut offenders = Vec::new();
    for package in workspace_packages(&meta) {
        let name = text(&package["name"]);
        let manifest = PathBuf::from(text(&package["manifest_path"]));
        // Test code (dev-dependencies) is a binary of its own and no one's library.
        let uses_anyhow = package["dependencies"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|dep| text(&dep["name"]) == "anyhow" && text(&dep["kind"]) != "dev");
        if !uses_anyhow || ANYHOW_PACKAGES.contains(&name) {
            continue;
        }
        let binaries: Vec<PathBuf> = package["targets"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|target| {
                target["kind"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| text(kind) == "bin"))
            })
            .map(|target| PathBuf::from(text(&target["src_path"])))
            .collect();
        if binaries.is_empty() {
            offenders.push(format!(
                "{}: library package {name} depends on anyhow; return a thiserror enum",
                locate(&root, &manifest, "anyhow")
            ));
            continue;
        }
        let dir = manifest.parent().expect("manifest folder");
        for file in rust_files(dir) {
            if binaries.contains(&file) {
                continue;
            }
            let content = fs::read_to_string(&file).unwrap_or_default();
            for (at, line) in content.lines().enumerate() {
                if code_part(line).contains("anyhow") {
                    offenders.push(format!(
                        "{}:{}: anyhow outside {name}'s binary; only its main file may use it",
                        relative(&root, &file),
                        at + 1
                    ));
                }
            }
        }
    }
    fail_on("anyhow only in binaries", offenders);
}

#[test]
fn connectors_do_not_reach_sqlx() {
    let root = workspace_root();
    let meta = metadata(&root);
    let names: BTreeMap<&str, &str> = meta["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| (text(&package["id"]), text(&package["name"])))
        .collect();
    // Normal dependencies only: a crate's tests may well use a database.
    let mut graph: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for node in meta["resolve"]["nodes"].as_array().expect("resolve graph") {
        let deps = node["deps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|dep| {
                dep["dep_kinds"]
                    .as_array()
                    .is_some_and(|kinds| kinds.iter().any(|kind| kind["kind"].is_null()))
            })
            .map(|dep| text(&dep["pkg"]))
            .collect();
        graph.insert(text(&node["id"]), deps);
    }
    // Until the model crate exists, connectors take their types from bestand-core, which is
    // built on sqlx; once it exists, connectors must not need core at all.
    let split = names.values().any(|name| *name == "bestand-model");
    let mut offenders = Vec::new();
    for (&id, &name) in &names {
        if !SQL_FREE_PACKAGES.contains(&name) {
            continue;
        }
        if let Some(path) = path_to_sqlx(&graph, &names, id, split) {
            offenders.push(format!(
                "{name} reaches sqlx through its normal dependencies: {}",
                path.join(" -> ")
            ));
        }
    }
    fail_on("connectors do not reach sqlx", offenders);
}

/// The first dependency path from `start` to a sqlx package, breadth first. Before the model
/// split, the way through bestand-core is the one known exception and is not followed.
fn path_to_sqlx<'a>(
    graph: &BTreeMap<&'a str, Vec<&'a str>>,
    names: &BTreeMap<&'a str, &'a str>,
    start: &'a str,
    split: bool,
) -> Option<Vec<&'a str>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(id) = queue.pop_front() {
        for &dep in graph.get(id).into_iter().flatten() {
            let name = names.get(dep).copied().unwrap_or(dep);
            if parent.contains_key(dep) || dep == start || (!split && name == "bestand-core") {
                continue;
            }
            parent.insert(dep, id);
            if name == "sqlx" || name.starts_with("sqlx-") {
                let mut path = vec![name];
                let mut at = id;
                while at != start {
                    path.push(names.get(at).copied().unwrap_or(at));
                    at = parent[at];
                }
                path.push(names.get(start).copied().unwrap_or(start));
                path.reverse();
                return Some(path);
            }
            queue.push_back(dep);
        }
    }
    None
}

/// The backticked spans of a Markdown line that name a file or folder.
fn named_paths(line: &str) -> Vec<&str> {
    line.split('`')
        .skip(1)
        .step_by(2)
        .filter(|span| {
            !span.contains(char::is_whitespace)
                && !span.contains("://")
                && !span.contains(['*', '<', '{', '$', '…'])
                && !span.starts_with("--")
                && !span.starts_with('/')
                && (span.contains('/')
                    || [".rs", ".md", ".toml", ".sql"]
                        .iter()
                        .any(|ext| span.ends_with(ext)))
        })
        .collect()
}

#[test]
fn architecture_names_only_files_that_exist() {
    let root = workspace_root();
    let doc = root.join("docs/ARCHITECTURE.md");
    let content = fs::read_to_string(&doc).expect("docs/ARCHITECTURE.md");
    let files = repository_files(&root);
    let mut offenders = Vec::new();
    for (at, line) in content.lines().enumerate() {
        for path in named_paths(line) {
            // An anchor names a heading, not a file.
            let path = path.split('#').next().unwrap_or(path);
            let exists = if path.contains('/') {
                root.join(path.trim_start_matches("./")).exists()
            } else {
                // A bare file name (`bench.rs`) is read next to the file the text is about.
                files
                    .iter()
                    .any(|file| file.file_name().is_some_and(|name| name == path))
            };
            if !exists {
                offenders.push(format!(
                    "docs/ARCHITECTURE.md:{}: `{path}` does not exist",
                    at + 1
                ));
            }
        }
    }
    fail_on("ARCHITECTURE.md names only files that exist", offenders);
}

/// Whether `line` cites a numbered section without naming the document ("§7.1").
fn cites_bare_section(line: &str) -> bool {
    line.match_indices('§').any(|(at, sign)| {
        line[at + sign.len()..]
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_digit())
    })
}

/// The `*.md` names a line mentions (ignoring web addresses).
fn named_markdown(line: &str) -> Vec<&str> {
    line.split(|c: char| !(c.is_alphanumeric() || matches!(c, '.' | '/' | '_' | '-' | ':')))
        .map(|word| word.trim_end_matches(['.', ':']))
        .filter(|word| !word.contains("://") && word.ends_with(".md") && word.len() > 3)
        .collect()
}

#[test]
fn no_file_cites_a_document_outside_the_repository() {
    let root = workspace_root();
    let files = repository_files(&root);
    let needles = outside_citations();
    let this_file = root.join("xtask/src/tidy.rs");
    let mut offenders = Vec::new();
    for file in &files {
        if *file == this_file {
            continue;
        }
        let Ok(content) = fs::read_to_string(file) else {
            continue; // binary files cite nothing
        };
        let dir = file.parent().expect("file in a folder");
        for (at, line) in content.lines().enumerate() {
            let mut cited: Vec<String> = needles
                .iter()
                .filter(|needle| line.contains(needle.as_str()))
                .map(|needle| format!("`{needle}`"))
                .collect();
            for name in named_markdown(line) {
                // `../docs/x.md` from a crate's folder is `docs/x.md` of the repository.
                let name = name.trim_start_matches(['.', '/']);
                let exists = root.join(name).exists()
                    || root.join("docs").join(name).exists()
                    || dir.join(name).exists();
                if !exists && !needles.iter().any(|needle| name.contains(needle.as_str())) {
                    cited.push(format!("`{name}`"));
                }
            }
            if cites_bare_section(line) {
                cited.push("a numbered section (§) without naming a file in docs/".into());
            }
            if !cited.is_empty() {
                offenders.push(format!(
                    "{}:{}: cites {}, not in the repository",
                    relative(&root, file),
                    at + 1,
                    cited.join(", ")
                ));
            }
        }
    }
    fail_on("no file cites a document outside the repository", offenders);
}

#[test]
fn the_checks_see_what_they_look_for() {
    assert_eq!(
        named_paths("`core/src/lib.rs` and `bench.rs`, not `sync::engine` or `--no-lint`"),
        ["core/src/lib.rs", "bench.rs"]
    );
    assert_eq!(
        named_markdown("see docs/sync.md#paging, (foo.md), d.mdm and https://x.org/a.md."),
        ["docs/sync.md", "foo.md"]
    );
    assert!(cites_bare_section("the rule of (§7.1)"));
    assert!(!cites_bare_section("Leihe, § 598 BGB"));
    assert_eq!(code_part("let t = x; // Utc::now"), "let t = x; ");

    let names = BTreeMap::from([
        ("c", "bestand-connectors"),
        ("m", "bestand-model"),
        ("k", "bestand-core"),
        ("s", "sqlx"),
    ]);
    let through_core = BTreeMap::from([("c", vec!["m", "k"]), ("k", vec!["s"])]);
    assert_eq!(path_to_sqlx(&through_core, &names, "c", false), None);
    assert_eq!(
        path_to_sqlx(&through_core, &names, "c", true),
        Some(vec!["bestand-connectors", "bestand-core", "sqlx"])
    );
    let direct = BTreeMap::from([("c", vec!["s"])]);
    assert_eq!(
        path_to_sqlx(&direct, &names, "c", false),
        Some(vec!["bestand-connectors", "sqlx"])
    );
}
