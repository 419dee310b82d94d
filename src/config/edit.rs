//! `opsdeck ctx use NAME`: rewrites the `current_context` line of the config file and
//! nothing else (comments, order and spacing stay), with `toml_edit`.

use std::path::Path;

use color_eyre::eyre::{eyre, Result, WrapErr};

use super::Config;

/// The file's text with `current_context = "NAME"` (replaced in place, or added at the top
/// level); refused when the result would not be a valid config naming an existing context.
pub fn set_current(origin: &str, text: &str, name: &str) -> Result<String> {
    let mut doc: toml_edit::DocumentMut = text.parse().map_err(|e: toml_edit::TomlError| {
        let line = e
            .span()
            .map(|s| crate::format::line_of(text, s.start))
            .unwrap_or(1);
        eyre!("config {origin}:{line}: {}", e.message().trim_end())
    })?;
    match doc
        .get_mut("current_context")
        .and_then(|i| i.as_value_mut())
    {
        Some(v) => {
            let decor = v.decor().clone();
            *v = name.into();
            *v.decor_mut() = decor;
        }
        None => doc["current_context"] = toml_edit::value(name),
    }
    let out = doc.to_string();
    Config::parse(origin, &out)?;
    Ok(out)
}

/// `set_current` on the file at `path` (created when absent), written atomically with the
/// file's permissions kept.
pub fn use_context(path: &Path, name: &str) -> Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(eyre!("cannot read the config file {}: {e}", path.display())),
    };
    let out = set_current(&path.display().to_string(), &text, name)?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .wrap_err_with(|| format!("cannot create {}", dir.display()))?;
    }
    let tmp = path.with_extension("toml.tmp");
    std::fs::write(&tmp, out).wrap_err_with(|| format!("cannot write {}", tmp.display()))?;
    if let Ok(meta) = std::fs::metadata(path) {
        std::fs::set_permissions(&tmp, meta.permissions())
            .wrap_err_with(|| format!("cannot set the mode of {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).wrap_err_with(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = "# my clusters\ntheme = \"light\"\ncurrent_context = \"a\"  # the usual one\n\n\
        [contexts.a]\n# staging\nendpoints = [\"10.0.0.1:7101\"]\n\n[contexts.b]\nendpoints = [\"10.0.0.2:7101\"]\n";

    #[test]
    fn rewrites_only_the_current_context_line() {
        let out = set_current("c.toml", FILE, "b").unwrap();
        assert_eq!(
            out,
            FILE.replace(
                "current_context = \"a\"  # the usual one",
                "current_context = \"b\"  # the usual one"
            )
        );
        let added = set_current("c.toml", "[contexts.a]\nendpoints = []\n", "a").unwrap();
        assert_eq!(
            added,
            "current_context = \"a\"\n[contexts.a]\nendpoints = []\n"
        );
        assert_eq!(
            set_current("c.toml", "", "dev").unwrap(),
            "current_context = \"dev\"\n"
        );
        let e = set_current("c.toml", FILE, "nope").unwrap_err().to_string();
        assert!(
            e.contains("is not a context: known contexts: a, b, dev"),
            "{e}"
        );
        let e = set_current("c.toml", "x = [\n", "a")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("config c.toml:"), "{e}");
    }
}
